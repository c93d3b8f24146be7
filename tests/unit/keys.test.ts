import { assertEquals } from "@std/assert";
import { foldConfigKeys } from "../../lib/keys.ts";

Deno.test("foldConfigKeys renames members of the fields the plugin reads, in any ASCII case", () => {
  assertEquals(
    foldConfigKeys({
      CNIVersion: "1.0.0",
      Master: "ib0",
      IPAM: { Type: "host-local", Subnet: "10.0.0.0/24" },
      DNS: { NameServers: ["10.0.0.2"] },
      vendorField: 1,
    }),
    {
      cniVersion: "1.0.0",
      master: "ib0",
      ipam: { type: "host-local", Subnet: "10.0.0.0/24" },
      dns: { nameservers: ["10.0.0.2"] },
      vendorField: 1,
    },
  );
});

Deno.test("foldConfigKeys: the last member naming a field wins, as encoding/json decodes in order", () => {
  assertEquals(foldConfigKeys({ master: "ib0", Master: "ib1" }), { master: "ib1" });
  assertEquals(foldConfigKeys({ MASTER: "ib1", master: "ib0" }), { master: "ib0" });
});

Deno.test("foldConfigKeys folds ASCII only and leaves anything that is not an object", () => {
  // U+0130 lower-cases to "i̇" in JavaScript; Go's encoding/json does not take it for "i".
  assertEquals(foldConfigKeys({ "\u0130pam": {} }), { "\u0130pam": {} });
  for (const v of [null, [], "x", 3]) assertEquals(foldConfigKeys(v), v);
});
