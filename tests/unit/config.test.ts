import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import { parseDelConf, parseNetConf, parseValidAttachments } from "../../lib/config.ts";
import { decodeJson } from "../../lib/stdin.ts";
import { requestedVersion } from "../../lib/version.ts";
import { CniError } from "../../lib/errors.ts";

const base = {
  cniVersion: "1.0.0",
  name: "ib-net",
  type: "ipoib",
  master: "ib0",
  ipam: { type: "host-local", subnet: "10.56.0.0/16" },
};

function failure(value: unknown, selfName?: string): CniError {
  return assertThrows(() => parseNetConf(value, selfName), CniError) as CniError;
}

Deno.test("parseNetConf accepts a minimal config and fills defaults", () => {
  const c = parseNetConf(base);
  assertEquals(c.cniVersion, "1.0.0");
  assertEquals(c.master, "ib0");
  assertEquals(c.ipamType, "host-local");
  assertEquals(c.mtu, undefined);
  assertEquals(c.pkey, undefined);
  assertEquals(c.logLevel, "error");
  assertEquals(c.logMaxSize, 4 * 1024 * 1024);
  assertEquals(c.ipamTimeoutSeconds, 30);
});

Deno.test("parseNetConf treats a missing cniVersion as 0.1.0", () => {
  const { cniVersion: _, ...rest } = base;
  assertEquals(parseNetConf(rest).cniVersion, "0.1.0");
});

Deno.test("parseNetConf accepts unknown fields and keeps only what the verbs read", () => {
  const c = parseNetConf({
    ...base,
    vendorThing: { a: 1 },
    ipam: { ...base.ipam, extra: [1, 2] },
    runtimeConfig: { ips: ["10.0.0.1/24"] },
    args: { cni: { ips: [] } },
  });
  assertEquals(Object.keys(c).sort(), [
    "cniVersion",
    "ipamTimeoutSeconds",
    "ipamType",
    "logLevel",
    "logMaxSize",
    "master",
    "name",
    "type",
  ]);
});

Deno.test('parseNetConf reads "cniVersion": "" as 0.1.0, as libcni sends it for a .conf without one', () => {
  assertEquals(parseNetConf({ ...base, cniVersion: "" }).cniVersion, "0.1.0");
  assertEquals(parseDelConf({ ...base, cniVersion: "" }).conf.cniVersion, "0.1.0");
});

Deno.test('parseNetConf and parseDelConf read "cniVersion": null as 0.1.0, as Go\'s skel does', () => {
  assertEquals(parseNetConf({ ...base, cniVersion: null }).cniVersion, "0.1.0");
  assertEquals(parseDelConf({ ...base, cniVersion: null }).conf.cniVersion, "0.1.0");
});

Deno.test("null in any optional field, at any depth, is read as not set (Go's encoding/json leaves it unset)", () => {
  const optional = [
    "mtu",
    "pkey",
    "dns",
    "logFile",
    "logLevel",
    "logMaxSize",
    "ipamTimeout",
    "prevResult",
    "args",
    "runtimeConfig",
    "capabilities",
  ];
  const expected = parseNetConf(base);
  for (const field of optional) {
    assertEquals(parseNetConf({ ...base, [field]: null }), expected, field);
    assertEquals(parseDelConf({ ...base, [field]: null }), { conf: expected, ignored: [] }, field);
  }
  const all = parseNetConf({ ...base, ...Object.fromEntries(optional.map((f) => [f, null])) });
  assertEquals(all, expected);
  // Inside an object too: a dns member, a prevResult member.
  assertEquals(parseNetConf({ ...base, dns: { nameservers: null, domain: "d" } }).dns, { domain: "d" });
  assertEquals(
    parseNetConf({ ...base, prevResult: { cniVersion: null, ips: [], dns: null } }).prevResult,
    { ips: [] },
  );
});

Deno.test('parseNetConf reads "mtu": 0 as not set (the master\'s MTU), as the reference plugins do', () => {
  assertEquals(parseNetConf({ ...base, mtu: 0 }).mtu, undefined);
  assertEquals(parseNetConf({ ...base, mtu: 68 }).mtu, 68);
  for (const bad of [-1, 1, 67, 65536]) assertEquals(failure({ ...base, mtu: bad }).code, 7, String(bad));
});

Deno.test("parseNetConf reads logMaxSize with a default and bounds", () => {
  assertEquals(parseNetConf({ ...base, logMaxSize: 65536 }).logMaxSize, 65536);
  for (const bad of [0, 4095, 1.5, "1M", 2 ** 31]) {
    const e = failure({ ...base, logMaxSize: bad });
    assertEquals(e.code, 7, String(bad));
    assertEquals(e.message.includes('field "logMaxSize"'), true);
  }
});

Deno.test("parseNetConf refuses an ipam.type naming this plugin itself, by its type or executable", () => {
  const own = failure({ ...base, ipam: { type: "ipoib" } });
  assertEquals(own.code, 7);
  assertEquals(
    own.message,
    'invalid network configuration: field "ipam.type" "ipoib" names this plugin itself',
  );
  const renamed = assertThrows(() => parseNetConf({ ...base, ipam: { type: "ib-cni" } }, "ib-cni"), CniError);
  assertEquals((renamed as CniError).code, 7);
  assertEquals(parseNetConf({ ...base, ipam: { type: "host-local" } }, "ib-cni").ipamType, "host-local");
});

Deno.test("parseDelConf goes on without every field value ADD refuses, and lists each", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mtu: 70000 }, "mtu"],
    [{ mtu: "1500" }, "mtu"],
    [{ logLevel: "warn" }, "logLevel"],
    [{ logFile: "relative.log" }, "logFile"],
    [{ logMaxSize: 1 }, "logMaxSize"],
    [{ pkey: 0x8000 }, "pkey"],
    [{ pkey: "abc" }, "pkey"],
    [{ dns: { nameservers: "1.1.1.1" } }, "dns.nameservers"],
    [{ ipamTimeout: 0 }, "ipamTimeout"],
    [{ prevResult: [] }, "prevResult"],
    [{ master: "ib/0" }, "master"],
    [{ master: 7 }, "master"],
  ];
  for (const [extra, field] of cases) {
    assertEquals(failure({ ...base, ...extra }).code, 7, field);
    const { conf, ignored } = parseDelConf({ ...base, ...extra });
    assertEquals(conf.name, "ib-net");
    assertEquals(conf.ipamType, "host-local");
    assertEquals(ignored.length, 1, field);
    assertEquals(ignored[0]!.startsWith(`invalid network configuration: field "${field}"`), true, ignored[0]);
  }
  const all = parseDelConf({ ...base, mtu: 70000, logLevel: "warn", logFile: "x", pkey: 0, master: "a b" });
  assertEquals(all.ignored.length, 5);
  assertEquals(all.conf.mtu, undefined);
  assertEquals(all.conf.logLevel, "error");
  assertEquals(all.conf.logFile, undefined);
  assertEquals(all.conf.pkey, undefined);
  assertEquals(all.conf.master, "");
  assertEquals(parseDelConf({ ...base, master: "ib0" }).conf.master, "ib0");
});

Deno.test("parseDelConf executes no IPAM type ADD refuses (dhcp, this plugin itself, a path): no lease can exist", () => {
  const cases = [
    ["dhcp", undefined],
    ["ipoib", undefined],
    ["ib-cni", "ib-cni"],
    ["../host-local", undefined],
    ["/bin/sh", undefined],
    ["a b", undefined],
  ] as const;
  for (const [type, self] of cases) {
    assertEquals(failure({ ...base, ipam: { type } }, self).code, type === "dhcp" ? 2 : 7, type);
    const { conf, ignored } = parseDelConf({ ...base, ipam: { type } }, self);
    assertEquals(conf.ipamType, null, type);
    assertEquals(ignored.length, 1);
    assertMatch(ignored[0]!, /field "ipam\.type" .*; no lease of it can exist, nothing executed$/);
  }
});

Deno.test("parseDelConf goes on without master: a marked child is found without it", () => {
  const conf: Record<string, unknown> = { ...base };
  delete conf.master;
  assertEquals(failure(conf).message, 'invalid network configuration: field "master" is missing');
  const del = parseDelConf(conf);
  assertEquals(del.conf.master, "");
  assertEquals(del.conf.ipamType, "host-local");
  assertEquals(del.ignored, ['field "master" is missing']);
});

Deno.test("parseDelConf still needs a name, a type, a usable ipam and a supported cniVersion", () => {
  const del = (v: unknown) => assertThrows(() => parseDelConf(v), CniError) as CniError;
  for (const field of ["name", "type"]) {
    const conf: Record<string, unknown> = { ...base };
    delete conf[field];
    assertEquals(del(conf).message, `invalid network configuration: field "${field}" is missing`);
  }
  assertEquals(del({ ...base, ipam: "host-local" }).code, 7);
  assertEquals(del({ ...base, cniVersion: "9.9.9" }).code, 1);
  for (const v of [null, [], "x", 3]) assertEquals(del(v).code, 7);
});

Deno.test("parseNetConf reads an empty ipam as layer 2 only", () => {
  assertEquals(parseNetConf({ ...base, ipam: {} }).ipamType, null);
});

Deno.test("parseNetConf refuses an unsupported cniVersion with code 1", () => {
  for (const v of ["2.0.0", "0.5.0", "1.1", 1]) {
    const e = failure({ ...base, cniVersion: v });
    assertEquals(e.code, 1);
    assertEquals(e.message, `cniVersion ${JSON.stringify(v)} is not supported`);
  }
});

Deno.test("parseNetConf names missing required fields with code 7", () => {
  for (const field of ["name", "type", "master"]) {
    const conf: Record<string, unknown> = { ...base };
    delete conf[field];
    const e = failure(conf);
    assertEquals(e.code, 7);
    assertEquals(e.message, `invalid network configuration: field "${field}" is missing`);
  }
});

Deno.test("parseNetConf names the field and the bad value", () => {
  const e = failure({ ...base, master: "ib/0" });
  assertEquals(e.code, 7);
  assertEquals(e.message.startsWith('invalid network configuration: field "master" "ib/0"'), true);
  const m = failure({ ...base, mtu: 1500.5 });
  assertEquals(m.message.startsWith('invalid network configuration: field "mtu" 1500.5'), true);
  assertEquals(failure({ ...base, mtu: "1500" }).code, 7);
  assertEquals(failure({ ...base, mtu: 20 }).code, 7);
  assertEquals(failure({ ...base, ipam: "host-local" }).code, 7);
  assertEquals(
    failure({ ...base, dns: { nameservers: "1.1.1.1" } }).message.includes('"dns.nameservers"'),
    true,
  );
  assertEquals(failure({ ...base, logLevel: "verbose" }).code, 7);
  assertEquals(failure({ ...base, logFile: "relative.log" }).code, 7);
});

Deno.test("parseNetConf refuses an IPAM type that is a path", () => {
  for (const t of ["/usr/bin/host-local", "../host-local", "a/b", ".hidden", "host local", "x;rm"]) {
    const e = failure({ ...base, ipam: { type: t } });
    assertEquals(e.code, 7, t);
    assertEquals(e.message.includes('"ipam.type"'), true);
  }
});

Deno.test("no ipam, null, an empty type or none is no IPAM plugin on every verb, as Go macvlan reads it", () => {
  const { ipam: _, ...noIpam } = base;
  for (
    const c of [
      noIpam,
      { ...base, ipam: null },
      { ...base, ipam: {} },
      { ...base, ipam: { type: "" } },
      { ...base, ipam: { type: null } },
      { ...base, ipam: { subnet: "10.0.0.0/8" } },
    ]
  ) {
    assertEquals(parseNetConf(c).ipamType, null, JSON.stringify(c));
    const del = parseDelConf(c);
    assertEquals([del.conf.ipamType, del.ignored], [null, []], JSON.stringify(c));
  }
});

Deno.test("parseNetConf refuses dhcp IPAM with code 2 and says why", () => {
  const e = failure({ ...base, ipam: { type: "dhcp" } });
  assertEquals(e.code, 2);
  assertEquals(e.message, 'field "ipam.type" "dhcp" is not supported');
});

Deno.test("parseNetConf reads partition keys in every accepted spelling", () => {
  const cases: [unknown, number][] = [
    [0x8001, 1],
    [1, 1],
    ["0x8001", 1],
    ["0X7FFF", 0x7fff],
    ["0x0002", 2],
    ["32770", 2],
    [0xffff, 0x7fff],
  ];
  for (const [given, key] of cases) {
    assertEquals(parseNetConf({ ...base, pkey: given }).pkey, key, String(given));
  }
});

Deno.test("parseNetConf refuses invalid partition keys", () => {
  for (const bad of [0, 0x8000, "0x8000", "0x0", -1, 0x10000, "0x10000", "abc", 1.5, true]) {
    const e = failure({ ...base, pkey: bad });
    assertEquals(e.code, 7, String(bad));
    assertEquals(e.message.includes('field "pkey"'), true);
  }
});

Deno.test("parseNetConf refuses a config that is not an object", () => {
  for (const v of [null, [], "x", 3]) assertEquals(failure(v).code, 7);
});

Deno.test("decodeJson gives code 6 for undecodable content", () => {
  for (const text of ["", "{", "{'a':1}", "\u0000"]) {
    const e = assertThrows(() => decodeJson(text), CniError) as CniError;
    assertEquals(e.code, 6);
  }
  assertEquals(decodeJson('{"a":1}'), { a: 1 });
});

Deno.test("requestedVersion reports the config's version when supported, else the latest", () => {
  assertEquals(requestedVersion({ cniVersion: "0.3.1" }), "0.3.1");
  assertEquals(requestedVersion({ cniVersion: "9.9.9" }), "1.1.0");
  assertEquals(requestedVersion("junk"), "1.1.0");
});

Deno.test("parseValidAttachments: GC's list, null without it, code 7 when it cannot be read", () => {
  const list = [{ containerID: "c1", ifname: "net1" }, { containerID: "c2", ifname: "net1", extra: 1 }];
  assertEquals(parseValidAttachments({ ...base, "cni.dev/valid-attachments": list }), [
    { containerID: "c1", ifname: "net1" },
    { containerID: "c2", ifname: "net1" },
  ]);
  assertEquals(parseValidAttachments({ ...base, "cni.dev/valid-attachments": [] }), []);
  assertEquals(parseValidAttachments(base), null);
  for (const bad of [{}, [{ containerID: "c1" }], [{ containerID: 1, ifname: "net1" }], "c1"]) {
    const e = assertThrows(
      () => parseValidAttachments({ ...base, "cni.dev/valid-attachments": bad }),
      CniError,
    ) as CniError;
    assertEquals(e.code, 7);
    assertEquals(
      e.message.startsWith('invalid network configuration: field "cni.dev/valid-attachments'),
      true,
    );
  }
  // ADD never reads it: a list that GC would refuse does not fail ADD.
  assertEquals(parseNetConf({ ...base, "cni.dev/valid-attachments": "c1" }).name, "ib-net");
});

Deno.test("null stripping copes with stdin nested as deep as 1 MiB allows: code 7, not a stack overflow", () => {
  const deep = JSON.parse(`${"[".repeat(500_000)}${"]".repeat(500_000)}`);
  for (const field of ["mtu", "vendorField", "prevResult"]) {
    const r = (() => {
      try {
        return parseNetConf({ ...base, [field]: deep });
      } catch (e) {
        return e;
      }
    })();
    if (field === "vendorField") assertEquals((r as { name: string }).name, "ib-net");
    else assertEquals((r as CniError).code, 7, field);
  }
});
