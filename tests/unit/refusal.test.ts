import { assertEquals } from "@std/assert";
import { parseRefusal } from "../../lib/refusal.ts";

Deno.test("parseRefusal reads the namespace identity and ifindex a refused ADD wrote", () => {
  assertEquals(parseRefusal('{"netns":"4:4026532281","ifindex":7}'), {
    netns: { dev: 4n, ino: 4026532281n },
    ifindex: 7,
  });
});

Deno.test("parseRefusal: anything else is no record", () => {
  for (const text of ["", "{", "null", '{"netns":"4","ifindex":7}', '{"netns":"4:5","ifindex":"7"}', "[]"]) {
    assertEquals(parseRefusal(text), null, text);
  }
});
