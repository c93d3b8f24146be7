/**
 * lib/ipoib.ts ipoibSettingsProblem: the IPoIB settings CHECK compares, decoded from hand-built
 * IFLA_INFO_DATA bytes laid out as the kernel's ipoib_fill_info writes them (three u16 attributes,
 * host byte order: little-endian on every Deno target).
 */

import { assertEquals } from "@std/assert";
import { parseAttributes } from "../../ffi/nlattr.ts";
import { ipoibSettingsProblem } from "../../lib/ipoib.ts";

/** IFLA_INFO_DATA of an IPoIB link: PKEY (1), MODE (2), UMCAST (3), each len 6 padded to 8. */
function infoData(pkey: number, mode: number, umcast: number) {
  const u16 = (type: number, v: number) => [0x06, 0x00, type, 0x00, v & 0xff, v >> 8, 0x00, 0x00];
  return parseAttributes(Uint8Array.from([...u16(1, pkey), ...u16(2, mode), ...u16(3, umcast)]));
}

const spec = { pkey: 0x0001, mode: 1 as const, umcast: true };

Deno.test("settings that match: the kernel's full-membership bit is not a difference", () => {
  assertEquals(ipoibSettingsProblem(infoData(0x8001, 1, 1), spec), null);
  assertEquals(ipoibSettingsProblem(infoData(0x8001, 1, 1), { ...spec, pkey: 0x8001 }), null);
  assertEquals(
    ipoibSettingsProblem(infoData(0x7fff | 0x8000, 0, 1), { pkey: 0x7fff, mode: 0, umcast: true }),
    null,
  );
});

Deno.test("a different partition key is reported with both keys as the kernel writes them", () => {
  assertEquals(
    ipoibSettingsProblem(infoData(0x8002, 1, 1), spec),
    "has partition key 0x8002, expected 0x8001",
  );
  assertEquals(
    ipoibSettingsProblem(infoData(0x0012, 1, 1), { ...spec, pkey: 0x0a12 }),
    "has partition key 0x0012, expected 0x8a12",
  );
});

Deno.test("a different mode or user-space multicast is reported by name", () => {
  assertEquals(
    ipoibSettingsProblem(infoData(0x8001, 0, 1), spec),
    "is in datagram mode, expected connected",
  );
  assertEquals(
    ipoibSettingsProblem(infoData(0x8001, 1, 1), { ...spec, mode: 0 }),
    "is in connected mode, expected datagram",
  );
  assertEquals(
    ipoibSettingsProblem(infoData(0x8001, 7, 1), spec),
    "is in unknown (7) mode, expected connected",
  );
  assertEquals(
    ipoibSettingsProblem(infoData(0x8001, 1, 0), spec),
    "has user-space multicast off, expected on",
  );
});

Deno.test("a missing or malformed attribute is reported, not read as zero", () => {
  assertEquals(
    ipoibSettingsProblem(new Map(), spec),
    "reports no partition key (IFLA_INFO_DATA holds no u16 attribute 1)",
  );
  const data = infoData(0x8001, 1, 1);
  data.set(2, Uint8Array.of(1, 0, 0, 0)); // a u32 where a u16 belongs
  assertEquals(
    ipoibSettingsProblem(data, spec),
    "reports no IPoIB mode (IFLA_INFO_DATA holds no u16 attribute 2)",
  );
  data.delete(2);
  data.delete(3);
  assertEquals(ipoibSettingsProblem(data, { pkey: 1 }), null);
  assertEquals(
    ipoibSettingsProblem(data, { umcast: true }),
    "reports no user-space multicast setting (IFLA_INFO_DATA holds no u16 attribute 3)",
  );
});

Deno.test("settings the spec leaves open are not compared", () => {
  assertEquals(ipoibSettingsProblem(new Map(), {}), null);
  assertEquals(ipoibSettingsProblem(infoData(0x8005, 0, 0), { pkey: 5 }), null);
});
