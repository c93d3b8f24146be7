import { assertEquals } from "@std/assert";
import { oneLine } from "../../lib/log.ts";

Deno.test("oneLine escapes line breaks and control characters so one message stays one line", () => {
  assertEquals(
    oneLine('CNI_CONTAINERID "a\nERROR forged" is invalid'),
    'CNI_CONTAINERID "a\\nERROR forged" is invalid',
  );
  assertEquals(
    oneLine("a\r\tb\u0000c\u001bd\u007fe\u2028f\u0085g"),
    "a\\r\\tb\\u0000c\\u001bd\\u007fe\\u2028f\\u0085g",
  );
  assertEquals(oneLine("plain ü 🙂 text"), "plain ü 🙂 text");
});
