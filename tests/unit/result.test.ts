import { assertEquals, assertThrows } from "@std/assert";
import { CniError, ErrorCode } from "../../lib/errors.ts";
import { SUPPORTED_VERSIONS } from "../../lib/version.ts";
import { isIp, parseCidr, parseIp } from "../../lib/ip.ts";
import { formatResult, limitToVersion, mergePrevResult, parseResult, type Result } from "../../lib/result.ts";

type Json = Record<string, unknown>;

/** Runs `fn`, which must throw a CniError, and returns that error for checks on code and message. */
function cniError(fn: () => unknown): CniError {
  return assertThrows(fn, CniError) as CniError;
}

function assertCniError(fn: () => unknown, code: number, message?: string): CniError {
  const e = cniError(fn);
  assertEquals({ code: e.code, ...(message === undefined ? {} : { message: e.message }) }, {
    code,
    ...(message === undefined ? {} : { message }),
  });
  return e;
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures: what real plugins print, one per input version, each already in canonical form so that parsing
// and printing it in its own version gives it back unchanged.

/** host-local, cniVersion 0.1.0, IPv4 with a default route. */
const V010: Json = {
  cniVersion: "0.1.0",
  ip4: { ip: "10.1.0.5/16", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0" }] },
  dns: {},
};

/** host-local, cniVersion 0.2.0, dual stack with a route via a gateway and full DNS. */
const V020: Json = {
  cniVersion: "0.2.0",
  ip4: {
    ip: "10.1.0.5/16",
    gateway: "10.1.0.1",
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254" }],
  },
  ip6: { ip: "fd00:10:1::5/64", gateway: "fd00:10:1::1", routes: [{ dst: "::/0" }] },
  dns: {
    nameservers: ["10.1.0.10"],
    domain: "cluster.local",
    search: ["default.svc.cluster.local", "svc.cluster.local"],
    options: ["ndots:5"],
  },
};

/** static, cniVersion 0.3.0, IPv6 only. */
const V030: Json = {
  cniVersion: "0.3.0",
  ips: [{ version: "6", address: "2001:db8:0:1::5/64", gateway: "2001:db8:0:1::1" }],
  routes: [{ dst: "::/0" }, { dst: "2001:db8:ffff::/48", gw: "2001:db8:0:1::fe" }],
  dns: { nameservers: ["2001:4860:4860::8888"] },
};

/** bridge, cniVersion 0.3.1: host bridge, host veth, container interface; the IP points at the latter. */
const V031: Json = {
  cniVersion: "0.3.1",
  interfaces: [
    { name: "cni0", mac: "0a:58:0a:f4:00:01" },
    { name: "veth1a2b3c4d", mac: "e6:0b:6d:1c:9a:22" },
    { name: "eth0", mac: "0a:58:0a:f4:00:05", sandbox: "/var/run/netns/cni-1234" },
  ],
  ips: [{ version: "4", interface: 2, address: "10.244.0.5/24", gateway: "10.244.0.1" }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

const IB_MAC = "80:00:00:48:fe:80:00:00:00:00:00:00:0c:42:a1:03:00:5d:e4:61";

/** ipoib, cniVersion 0.4.0: two addresses of each family, interleaved, and routes of both families. */
const V040: Json = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "ib0", mac: IB_MAC, sandbox: "/var/run/netns/pod1" }],
  ips: [
    { version: "4", interface: 0, address: "192.168.10.5/24", gateway: "192.168.10.1" },
    { version: "6", interface: 0, address: "fd00:1b::5/64", gateway: "fd00:1b::1" },
    { version: "4", interface: 0, address: "192.168.11.5/24" },
    { version: "6", interface: 0, address: "fd00:1c::5/64" },
  ],
  routes: [
    { dst: "10.0.0.0/8", gw: "192.168.10.254" },
    { dst: "fd00::/8", gw: "fd00:1b::fe" },
    { dst: "0.0.0.0/0" },
  ],
  dns: { nameservers: ["192.168.10.2"], search: ["ib.example.com"] },
};

/** host-local IPAM, cniVersion 1.0.0: dual stack, no interfaces (IPAM plugins omit them). */
const V100: Json = {
  cniVersion: "1.0.0",
  ips: [
    { address: "10.1.0.5/16", gateway: "10.1.0.1" },
    { address: "fd00:10:1::5/64", gateway: "fd00:10:1::1" },
  ],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
  dns: {},
};

/** A full 1.1.0 result using every 1.1.0-only field. */
const V110: Json = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "ib0", mac: IB_MAC, mtu: 2044, sandbox: "/var/run/netns/pod1", pciID: "0000:3b:00.2" },
    { name: "vhost0", socketPath: "/var/run/vhost/vhost0.sock" },
  ],
  ips: [
    { interface: 0, address: "192.168.10.5/24", gateway: "192.168.10.1" },
    { interface: 0, address: "fd00:1b::5/64" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "192.168.10.1", mtu: 2044, advmss: 1400, priority: 100, table: 100, scope: 0 },
    { dst: "fd00:1b::/64", scope: 253 },
  ],
  dns: { nameservers: ["192.168.10.2"], domain: "example.com", options: ["ndots:2"] },
};

const FIXTURES: Record<string, Json> = {
  "0.1.0": V010,
  "0.2.0": V020,
  "0.3.0": V030,
  "0.3.1": V031,
  "0.4.0": V040,
  "1.0.0": V100,
  "1.1.0": V110,
};

const convert = (input: Json, version: string) => formatResult(parseResult(input), version);

// ---------------------------------------------------------------------------------------------------------
// Parsing into the model

Deno.test("parseResult reads a 0.1.0 ip4 result into ips and routes", () => {
  assertEquals(parseResult(V010), {
    interfaces: [],
    ips: [{ address: "10.1.0.5/16", gateway: "10.1.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
});

Deno.test("parseResult reads a 0.2.0 dual-stack result, ip4 routes before ip6 routes", () => {
  assertEquals(parseResult(V020), {
    interfaces: [],
    ips: [
      { address: "10.1.0.5/16", gateway: "10.1.0.1" },
      { address: "fd00:10:1::5/64", gateway: "fd00:10:1::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254" }, { dst: "::/0" }],
    dns: {
      nameservers: ["10.1.0.10"],
      domain: "cluster.local",
      search: ["default.svc.cluster.local", "svc.cluster.local"],
      options: ["ndots:5"],
    },
  });
});

Deno.test("parseResult drops the 0.3.x ips version and keeps the interface index", () => {
  assertEquals(parseResult(V031), {
    interfaces: [
      { name: "cni0", mac: "0a:58:0a:f4:00:01" },
      { name: "veth1a2b3c4d", mac: "e6:0b:6d:1c:9a:22" },
      { name: "eth0", mac: "0a:58:0a:f4:00:05", sandbox: "/var/run/netns/cni-1234" },
    ],
    ips: [{ interface: 2, address: "10.244.0.5/24", gateway: "10.244.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
});

Deno.test("parseResult keeps every 1.1.0 field", () => {
  const r = parseResult(V110);
  assertEquals(r.interfaces, V110.interfaces);
  assertEquals(r.routes, V110.routes);
  assertEquals(r.dns, V110.dns);
});

Deno.test("parseResult writes addresses and gateways in canonical form", () => {
  const r = parseResult({
    cniVersion: "1.0.0",
    ips: [{ address: "2001:DB8:0:0:0:0:0:0005/64", gateway: "2001:db8::0:1" }],
    routes: [{ dst: "2001:0db8:ffff:0000::/48", gw: "2001:DB8::FE" }],
  });
  assertEquals(r.ips, [{ address: "2001:db8::5/64", gateway: "2001:db8::1" }]);
  assertEquals(r.routes, [{ dst: "2001:db8:ffff::/48", gw: "2001:db8::fe" }]);
});

Deno.test("parseResult treats null, empty strings, empty lists and zero mtu as absent, like Go", () => {
  const r = parseResult({
    cniVersion: "1.1.0",
    interfaces: [{ name: "ib0", mac: "", mtu: 0, sandbox: null, socketPath: "" }],
    ips: [{ address: "10.0.0.5/24", gateway: null, interface: null }],
    routes: [{ dst: "0.0.0.0/0", gw: "", mtu: 0, advmss: 0, priority: 0, table: 0 }],
    dns: { nameservers: [], domain: "", search: null },
  });
  assertEquals(r, {
    interfaces: [{ name: "ib0" }],
    ips: [{ address: "10.0.0.5/24" }],
    // table is a pointer in Go, so an explicit 0 is a value and is kept.
    routes: [{ dst: "0.0.0.0/0", table: 0 }],
    dns: {},
  });
  assertEquals(parseResult({ cniVersion: "0.4.0", ips: null, dns: null }), {
    interfaces: [],
    ips: [],
    routes: [],
    dns: {},
  });
});

Deno.test("parseResult ignores unknown fields, as Go's decoder does", () => {
  const r = parseResult({
    cniVersion: "1.0.0",
    ips: [{ address: "10.0.0.5/24", extra: 1 }],
    vendor: { x: 1 },
  });
  assertEquals(r.ips, [{ address: "10.0.0.5/24" }]);
});

Deno.test("parseResult without cniVersion reads ip4/ip6 as 0.1.0 and anything else as 0.3.0+", () => {
  const { cniVersion: _a, ...legacy } = V020;
  assertEquals(parseResult(legacy), parseResult(V020));
  const { cniVersion: _b, ...current } = V040;
  assertEquals(parseResult(current), parseResult(V040));
  const { cniVersion: _c, ...ipam } = V100;
  assertEquals(parseResult(ipam), parseResult(V100));
  assertEquals(parseResult({ cniVersion: "", ip4: { ip: "10.0.0.5/8" } }).ips, [{ address: "10.0.0.5/8" }]);
  assertEquals(parseResult({}), { interfaces: [], ips: [], routes: [], dns: {} });
});

Deno.test("parseResult accepts a 0.3.1-labelled result whose ips lack version (1.x-shaped output)", () => {
  const r = parseResult({
    cniVersion: "0.3.1",
    ips: [{ address: "fd00::5/64" }, { address: "10.0.0.5/24" }],
  });
  assertEquals(formatResult(r, "0.3.1").ips, [
    { version: "6", address: "fd00::5/64" },
    { version: "4", address: "10.0.0.5/24" },
  ]);
});

// libcni 1.1.2 decodes a plugin's 0.4.0 output into Go's types040.Result and encodes it again for the next
// plugin's prevResult: an IP printed without "version" (Go loopback 1.1.1's) comes back as `"version": ""`.
const LIBCNI_LOOPBACK_PREV = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: "/var/run/netns/cni-1" }],
  ips: [
    { version: "", interface: 0, address: "127.0.0.1/8" },
    { version: "", interface: 0, address: "::1/128" },
  ],
  dns: {},
};

Deno.test("parseResult derives an empty ips version from the address (libcni's re-encoded prevResult)", () => {
  for (const label of ["prevResult", "IPAM result"]) {
    const r = parseResult(LIBCNI_LOOPBACK_PREV, label);
    assertEquals(r.ips, [
      { interface: 0, address: "127.0.0.1/8" },
      { interface: 0, address: "::1/128" },
    ]);
    // Passed on in 0.4.0, each IP says its family again.
    assertEquals(formatResult(r, "0.4.0").ips, [
      { version: "4", interface: 0, address: "127.0.0.1/8" },
      { version: "6", interface: 0, address: "::1/128" },
    ]);
  }
  // A missing version at 0.4.0 reads the same way.
  assertEquals(
    parseResult({ cniVersion: "0.4.0", ips: [{ address: "10.0.0.5/24" }] }, "prevResult").ips,
    [{ address: "10.0.0.5/24" }],
  );
});

Deno.test("parseResult takes the family from the address whatever string ips version holds, as Go does", () => {
  const ip = (version: unknown, address: string) => ({ cniVersion: "0.4.0", ips: [{ version, address }] });
  // Go's types/040 keeps "version" as an opaque string and drops it when converting: tuning passes these on.
  assertEquals(parseResult(ip("4", "::1/128"), "prevResult").ips, [{ address: "::1/128" }]);
  assertEquals(parseResult(ip("IPv4", "10.0.0.5/24")).ips, [{ address: "10.0.0.5/24" }]);
  const printed = formatResult(parseResult(ip("4", "::1/128"), "prevResult"), "0.4.0") as {
    ips: { version: string }[];
  };
  assertEquals(printed.ips[0]?.version, "6");
  assertCniError(
    () => parseResult(ip(4, "10.0.0.5/24")),
    ErrorCode.DecodingFailure,
    "IPAM result: ips[0].version must be a string, got number 4",
  );
});

Deno.test("parseResult accepts a zoned link-local IPv6 nameserver", () => {
  assertEquals(parseResult({ cniVersion: "1.0.0", dns: { nameservers: ["fe80::1%eth0"] } }).dns, {
    nameservers: ["fe80::1%eth0"],
  });
});

Deno.test("parseResult uses the label in its messages", () => {
  assertCniError(
    () => parseResult({ cniVersion: "1.0.0", ips: [{ address: "x" }] }, "prevResult"),
    ErrorCode.DecodingFailure,
    'prevResult: ips[0].address "x" is not a CIDR',
  );
});

// ---------------------------------------------------------------------------------------------------------
// Bad inputs

Deno.test("parseResult refuses a result that is not a JSON object with code 6", () => {
  for (
    const [v, got] of [[null, "null"], [[], "an array"], ["ok", 'string "ok"'], [42, "number 42"]] as const
  ) {
    assertCniError(
      () => parseResult(v),
      ErrorCode.DecodingFailure,
      `IPAM result: must be a JSON object, got ${got}`,
    );
  }
});

Deno.test("parseResult refuses addresses that are not CIDRs, naming the path and value", () => {
  const cases: [Json, string][] = [
    [{ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] }, 'ips[0].address "10.0.0.1" is not a CIDR'],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/33" }] },
      'ips[0].address "10.0.0.1/33" is not a CIDR',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.256/8" }] },
      'ips[0].address "10.0.0.256/8" is not a CIDR',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/024" }] },
      'ips[0].address "10.0.0.1/024" is not a CIDR',
    ],
    [
      { cniVersion: "0.4.0", ips: [{ version: "6", address: "2001:db8:::1/64" }] },
      'ips[0].address "2001:db8:::1/64" is not a CIDR',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "fd00::1/129" }] },
      'ips[0].address "fd00::1/129" is not a CIDR',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "fd00::1%ib0/64" }] },
      'ips[0].address "fd00::1%ib0/64" is not a CIDR',
    ],
    [{ cniVersion: "1.0.0", ips: [{}] }, "ips[0].address is missing"],
    [{ cniVersion: "1.0.0", routes: [{ dst: "10.0.0.0" }] }, 'routes[0].dst "10.0.0.0" is not a CIDR'],
    [{ cniVersion: "1.0.0", routes: [{ gw: "10.0.0.1" }] }, "routes[0].dst is missing"],
    [{ cniVersion: "0.2.0", ip4: { ip: "10.0.0.5" } }, 'ip4.ip "10.0.0.5" is not a CIDR'],
    [{ cniVersion: "0.2.0", ip4: { ip: "fd00::5/64" } }, 'ip4.ip "fd00::5/64" is not an IPv4 CIDR'],
    [{ cniVersion: "0.2.0", ip6: { ip: "10.0.0.5/8" } }, 'ip6.ip "10.0.0.5/8" is not an IPv6 CIDR'],
    [
      { cniVersion: "0.1.0", ip4: { ip: "10.0.0.5/8", routes: [{ dst: "::/0" }] } },
      'ip4.routes[0].dst "::/0" is not an IPv4 CIDR',
    ],
  ];
  for (const [input, msg] of cases) {
    assertCniError(() => parseResult(input), ErrorCode.DecodingFailure, `IPAM result: ${msg}`);
  }
});

Deno.test("parseResult refuses bad gateways, including one of the other family", () => {
  const cases: [Json, string][] = [
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.300" }] },
      'ips[0].gateway "10.0.0.300" is not an IP address',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.1/24" }] },
      'ips[0].gateway "10.0.0.1/24" is not an IP address',
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24", gateway: "fd00::1" }] },
      'ips[0].gateway "fd00::1" is an IPv6 address but ips[0].address "10.0.0.5/24" is IPv4',
    ],
    [
      { cniVersion: "0.2.0", ip6: { ip: "fd00::5/64", gateway: "10.0.0.1" } },
      'ip6.gateway "10.0.0.1" is an IPv4 address but ip6.ip "fd00::5/64" is IPv6',
    ],
    [
      { cniVersion: "1.0.0", routes: [{ dst: "0.0.0.0/0", gw: "gateway" }] },
      'routes[0].gw "gateway" is not an IP address',
    ],
    [
      { cniVersion: "1.0.0", dns: { nameservers: ["10.0.0.2", "dns.example.com"] } },
      'dns.nameservers[1] "dns.example.com" is not an IP address',
    ],
  ];
  for (const [input, msg] of cases) {
    assertCniError(() => parseResult(input), ErrorCode.DecodingFailure, `IPAM result: ${msg}`);
  }
});

Deno.test("parseResult refuses fields of the wrong type and numbers out of range", () => {
  const cases: [Json, string][] = [
    [{ cniVersion: "1.0.0", ips: {} }, "ips must be an array, got an object"],
    [{ cniVersion: "1.0.0", ips: ["10.0.0.5/24"] }, 'ips[0] must be a JSON object, got string "10.0.0.5/24"'],
    [
      { cniVersion: "1.0.0", ips: [{ address: 167772165 }] },
      "ips[0].address must be a string, got number 167772165",
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24", interface: -1 }] },
      "ips[0].interface must be an integer from 0 to 2147483647, got number -1",
    ],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24", interface: "0" }] },
      'ips[0].interface must be an integer from 0 to 2147483647, got string "0"',
    ],
    [
      {
        cniVersion: "1.0.0",
        interfaces: [{ name: "eth0" }],
        ips: [{ address: "10.0.0.5/24", interface: 1 }],
      },
      "ips[0].interface 1 is out of range: the result has 1 interface(s)",
    ],
    [
      { cniVersion: "0.4.0", ips: [{ version: 4, address: "10.0.0.5/24" }] },
      "ips[0].version must be a string, got number 4",
    ],
    [
      { cniVersion: "1.1.0", routes: [{ dst: "0.0.0.0/0", mtu: 1.5 }] },
      "routes[0].mtu must be an integer from 0 to 4294967295, got number 1.5",
    ],
    [
      { cniVersion: "1.1.0", routes: [{ dst: "0.0.0.0/0", scope: 256 }] },
      "routes[0].scope must be an integer from 0 to 255, got number 256",
    ],
    [
      { cniVersion: "1.1.0", routes: [{ dst: "0.0.0.0/0", table: "main" }] },
      'routes[0].table must be an integer from 0 to 4294967295, got string "main"',
    ],
    [{ cniVersion: "1.1.0", interfaces: [{ mac: "0a:58:0a:f4:00:01" }] }, "interfaces[0].name is missing"],
    [{ cniVersion: "1.1.0", interfaces: [{ name: 0 }] }, "interfaces[0].name must be a string, got number 0"],
    [
      { cniVersion: "1.1.0", interfaces: [{ name: "ib0", mac: "not-a-mac" }] },
      'interfaces[0].mac "not-a-mac" is not a hardware address',
    ],
    [
      { cniVersion: "1.1.0", interfaces: [{ name: "ib0", mtu: -1 }] },
      "interfaces[0].mtu must be an integer from 0 to 4294967295, got number -1",
    ],
    [{ cniVersion: "1.0.0", dns: ["10.0.0.2"] }, "dns must be a JSON object, got an array"],
    [
      { cniVersion: "1.0.0", dns: { search: "example.com" } },
      'dns.search must be an array, got string "example.com"',
    ],
    [{ cniVersion: "1.0.0", dns: { options: [5] } }, "dns.options[0] must be a string, got number 5"],
    [{ cniVersion: "0.2.0", ip4: "10.0.0.5/8" }, 'ip4 must be a JSON object, got string "10.0.0.5/8"'],
    [{ cniVersion: 1 }, "cniVersion must be a string, got number 1"],
  ];
  for (const [input, msg] of cases) {
    assertCniError(() => parseResult(input), ErrorCode.DecodingFailure, `IPAM result: ${msg}`);
  }
});

Deno.test("parseResult refuses a result whose shape contradicts its cniVersion", () => {
  assertCniError(
    () => parseResult({ cniVersion: "0.2.0", ips: [{ address: "10.0.0.5/24" }] }),
    ErrorCode.DecodingFailure,
    'IPAM result: ips is a 0.3.0+ field, but the result says cniVersion "0.2.0" (which uses ip4/ip6)',
  );
  assertCniError(
    () => parseResult({ cniVersion: "1.0.0", ip6: { ip: "fd00::5/64" } }),
    ErrorCode.DecodingFailure,
    'IPAM result: ip6 is a 0.1.0/0.2.0 field, but the result says cniVersion "1.0.0" (which uses ips)',
  );
});

Deno.test("parseResult refuses an unsupported cniVersion with code 1", () => {
  for (const v of ["0.5.0", "2.0.0", "1.0", "v1.0.0"]) {
    const e = assertCniError(
      () => parseResult({ cniVersion: v, ips: [] }),
      ErrorCode.IncompatibleVersion,
      `IPAM result: cniVersion "${v}" is not supported`,
    );
    assertEquals(e.details, "supported versions: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  }
});

Deno.test("parseResult names the label and the field of a bad address (code 6)", () => {
  assertCniError(
    () => parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] }, "prevResult"),
    ErrorCode.DecodingFailure,
    'prevResult: ips[0].address "10.0.0.1" is not a CIDR',
  );
});

// ---------------------------------------------------------------------------------------------------------
// Printing: hand-written expectations for representative pairs

Deno.test("a result printed in another version of the same shape changes only cniVersion", () => {
  const pairs: [Json, string][] = [[V010, "0.2.0"], [V020, "0.1.0"], [V031, "0.4.0"], [V031, "0.3.0"], [
    V100,
    "1.1.0",
  ]];
  for (const [input, to] of pairs) assertEquals(convert(input, to), { ...input, cniVersion: to }, to);
});

Deno.test("0.1.0 ip4 result printed as 1.1.0 moves ip4 into ips and routes", () => {
  assertEquals(convert(V010, "1.1.0"), {
    cniVersion: "1.1.0",
    ips: [{ address: "10.1.0.5/16", gateway: "10.1.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
});

Deno.test("0.1.0 ip4 result printed as 0.4.0 gains ips version 4", () => {
  assertEquals(convert(V010, "0.4.0"), {
    cniVersion: "0.4.0",
    ips: [{ version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
});

Deno.test("0.2.0 dual-stack result printed as 1.0.0 lists both addresses and all routes", () => {
  assertEquals(convert(V020, "1.0.0"), {
    cniVersion: "1.0.0",
    ips: [
      { address: "10.1.0.5/16", gateway: "10.1.0.1" },
      { address: "fd00:10:1::5/64", gateway: "fd00:10:1::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254" }, { dst: "::/0" }],
    dns: V020.dns,
  });
});

Deno.test("0.2.0 dual-stack result printed as 0.3.1 tags each address with its family", () => {
  assertEquals(convert(V020, "0.3.1"), {
    cniVersion: "0.3.1",
    ips: [
      { version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1" },
      { version: "6", address: "fd00:10:1::5/64", gateway: "fd00:10:1::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.1.0.254" }, { dst: "::/0" }],
    dns: V020.dns,
  });
});

Deno.test("0.3.0 IPv6-only result printed as 0.2.0 has ip6 and no ip4", () => {
  assertEquals(convert(V030, "0.2.0"), {
    cniVersion: "0.2.0",
    ip6: {
      ip: "2001:db8:0:1::5/64",
      gateway: "2001:db8:0:1::1",
      routes: [{ dst: "::/0" }, { dst: "2001:db8:ffff::/48", gw: "2001:db8:0:1::fe" }],
    },
    dns: { nameservers: ["2001:4860:4860::8888"] },
  });
});

Deno.test("0.3.0 IPv6-only result printed as 1.1.0 drops the ips version", () => {
  assertEquals(convert(V030, "1.1.0"), {
    cniVersion: "1.1.0",
    ips: [{ address: "2001:db8:0:1::5/64", gateway: "2001:db8:0:1::1" }],
    routes: [{ dst: "::/0" }, { dst: "2001:db8:ffff::/48", gw: "2001:db8:0:1::fe" }],
    dns: { nameservers: ["2001:4860:4860::8888"] },
  });
});

Deno.test("0.3.1 bridge result printed as 1.0.0 keeps interfaces and the interface index", () => {
  assertEquals(convert(V031, "1.0.0"), {
    cniVersion: "1.0.0",
    interfaces: V031.interfaces,
    ips: [{ interface: 2, address: "10.244.0.5/24", gateway: "10.244.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
});

Deno.test("0.3.1 bridge result printed as 0.2.0 loses interfaces and the index", () => {
  assertEquals(convert(V031, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: { ip: "10.244.0.5/24", gateway: "10.244.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    dns: {},
  });
});

Deno.test("0.4.0 result printed as 0.2.0 keeps the first address of each family only", () => {
  assertEquals(convert(V040, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: {
      ip: "192.168.10.5/24",
      gateway: "192.168.10.1",
      routes: [{ dst: "10.0.0.0/8", gw: "192.168.10.254" }, { dst: "0.0.0.0/0" }],
    },
    ip6: { ip: "fd00:1b::5/64", gateway: "fd00:1b::1", routes: [{ dst: "fd00::/8", gw: "fd00:1b::fe" }] },
    dns: { nameservers: ["192.168.10.2"], search: ["ib.example.com"] },
  });
});

Deno.test("0.4.0 result printed as 1.1.0 keeps all four addresses in order", () => {
  assertEquals(convert(V040, "1.1.0"), {
    cniVersion: "1.1.0",
    interfaces: [{ name: "ib0", mac: IB_MAC, sandbox: "/var/run/netns/pod1" }],
    ips: [
      { interface: 0, address: "192.168.10.5/24", gateway: "192.168.10.1" },
      { interface: 0, address: "fd00:1b::5/64", gateway: "fd00:1b::1" },
      { interface: 0, address: "192.168.11.5/24" },
      { interface: 0, address: "fd00:1c::5/64" },
    ],
    routes: V040.routes,
    dns: V040.dns,
  });
});

Deno.test("1.0.0 IPAM result printed as 0.3.0 has no interfaces key", () => {
  assertEquals(convert(V100, "0.3.0"), {
    cniVersion: "0.3.0",
    ips: [
      { version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1" },
      { version: "6", address: "fd00:10:1::5/64", gateway: "fd00:10:1::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
    dns: {},
  });
});

Deno.test("1.0.0 IPAM result printed as 0.1.0 splits routes between ip4 and ip6", () => {
  assertEquals(convert(V100, "0.1.0"), {
    cniVersion: "0.1.0",
    ip4: { ip: "10.1.0.5/16", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    ip6: { ip: "fd00:10:1::5/64", gateway: "fd00:10:1::1", routes: [{ dst: "::/0" }] },
    dns: {},
  });
});

Deno.test("1.1.0 result printed as 1.0.0 drops the 1.1.0-only interface and route fields", () => {
  assertEquals(convert(V110, "1.0.0"), {
    cniVersion: "1.0.0",
    interfaces: [{ name: "ib0", mac: IB_MAC, sandbox: "/var/run/netns/pod1" }, { name: "vhost0" }],
    ips: V110.ips,
    routes: [{ dst: "0.0.0.0/0", gw: "192.168.10.1" }, { dst: "fd00:1b::/64" }],
    dns: V110.dns,
  });
});

Deno.test("1.1.0 result printed as 0.4.0 adds ips version and drops the 1.1.0-only fields", () => {
  assertEquals(convert(V110, "0.4.0"), {
    cniVersion: "0.4.0",
    interfaces: [{ name: "ib0", mac: IB_MAC, sandbox: "/var/run/netns/pod1" }, { name: "vhost0" }],
    ips: [
      { version: "4", interface: 0, address: "192.168.10.5/24", gateway: "192.168.10.1" },
      { version: "6", interface: 0, address: "fd00:1b::5/64" },
    ],
    routes: [{ dst: "0.0.0.0/0", gw: "192.168.10.1" }, { dst: "fd00:1b::/64" }],
    dns: V110.dns,
  });
});

Deno.test("1.1.0 result printed as 0.2.0 keeps only dst and gw in ip4/ip6 routes", () => {
  assertEquals(convert(V110, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: {
      ip: "192.168.10.5/24",
      gateway: "192.168.10.1",
      routes: [{ dst: "0.0.0.0/0", gw: "192.168.10.1" }],
    },
    ip6: { ip: "fd00:1b::5/64", routes: [{ dst: "fd00:1b::/64" }] },
    dns: V110.dns,
  });
});

Deno.test("formatResult prints fields in the Go reference order", () => {
  assertEquals(
    JSON.stringify(convert(V110, "0.4.0")),
    '{"cniVersion":"0.4.0","interfaces":[{"name":"ib0","mac":"' + IB_MAC +
      '","sandbox":"/var/run/netns/pod1"},' +
      '{"name":"vhost0"}],"ips":[{"version":"4","interface":0,"address":"192.168.10.5/24",' +
      '"gateway":"192.168.10.1"},{"version":"6","interface":0,"address":"fd00:1b::5/64"}],' +
      '"routes":[{"dst":"0.0.0.0/0","gw":"192.168.10.1"},{"dst":"fd00:1b::/64"}],' +
      '"dns":{"nameservers":["192.168.10.2"],"domain":"example.com","options":["ndots:2"]}}',
  );
  assertEquals(
    JSON.stringify(convert(V110, "1.1.0").routes),
    '[{"dst":"0.0.0.0/0","gw":"192.168.10.1","mtu":2044,"advmss":1400,"priority":100,"table":100,"scope":0},' +
      '{"dst":"fd00:1b::/64","scope":253}]',
  );
});

Deno.test("formatResult drops routes of a family with no address in 0.1.0/0.2.0, as libcni does", () => {
  const r = parseResult({
    cniVersion: "1.0.0",
    ips: [{ address: "10.0.0.5/24" }],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
  });
  assertEquals(formatResult(r, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.5/24", routes: [{ dst: "0.0.0.0/0" }] },
    dns: {},
  });
});

Deno.test("formatResult prints an empty result without lists but with dns {}", () => {
  const empty: Result = { interfaces: [], ips: [], routes: [], dns: {} };
  for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    assertEquals(formatResult(empty, v), { cniVersion: v, dns: {} });
  }
});

Deno.test("formatResult refuses a result without addresses in 0.1.0/0.2.0 with code 1", () => {
  const noIp = parseResult({
    cniVersion: "0.4.0",
    interfaces: [{ name: "ib0", sandbox: "/var/run/netns/pod1" }],
    routes: [{ dst: "0.0.0.0/0" }],
  });
  for (const v of ["0.1.0", "0.2.0"]) {
    const e = assertCniError(
      () => formatResult(noIp, v),
      ErrorCode.IncompatibleVersion,
      `a result without any IP address cannot be expressed in cniVersion ${v}`,
    );
    assertEquals(e.details.includes("use cniVersion 0.3.0 or later"), true);
  }
  assertEquals(formatResult(noIp, "0.3.0").interfaces, [{ name: "ib0", sandbox: "/var/run/netns/pod1" }]);
});

Deno.test("formatResult refuses an unsupported version with code 1", () => {
  assertCniError(
    () => formatResult(parseResult(V100), "0.5.0"),
    ErrorCode.IncompatibleVersion,
    'cannot print a result in cniVersion "0.5.0"',
  );
});

Deno.test("formatResult output does not share arrays with the model", () => {
  const r = parseResult(V020);
  const out = formatResult(r, "1.1.0") as { dns: { search: string[] } };
  out.dns.search.push("mutated");
  assertEquals(r.dns.search, ["default.svc.cluster.local", "svc.cluster.local"]);
});

// ---------------------------------------------------------------------------------------------------------
// The full matrix: every input version printed in every output version

const LEGACY_KEYS = ["cniVersion", "ip4", "ip6", "dns"];
const CURRENT_KEYS = ["cniVersion", "interfaces", "ips", "routes", "dns"];
const OLD_INTERFACE_KEYS = ["name", "mac", "sandbox"];
const NEW_INTERFACE_KEYS = [...OLD_INTERFACE_KEYS, "mtu", "socketPath", "pciID"];
const OLD_ROUTE_KEYS = ["dst", "gw"];
const NEW_ROUTE_KEYS = [...OLD_ROUTE_KEYS, "mtu", "advmss", "priority", "table", "scope"];

function assertKeysWithin(o: unknown, allowed: string[], where: string) {
  const extra = Object.keys(o as Json).filter((k) => !allowed.includes(k));
  assertEquals(extra, [], `${where}: unexpected keys`);
}

/** Fails on any `undefined` member: it would vanish in JSON.stringify and make the printed text differ. */
function assertNoUndefined(v: unknown, where: string) {
  if (v === undefined) throw new Error(`${where} is undefined`);
  if (Array.isArray(v)) v.forEach((x, i) => assertNoUndefined(x, `${where}[${i}]`));
  else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) assertNoUndefined(x, `${where}.${k}`);
  }
}

const family = (cidr: string) => parseCidr(cidr)?.family;

for (const [from, input] of Object.entries(FIXTURES)) {
  for (const to of SUPPORTED_VERSIONS) {
    Deno.test(`a ${from} result printed as ${to} has exactly the ${to} shape and re-reads to the same data`, () => {
      const model = parseResult(input);
      const out = formatResult(model, to);
      const where = `${from}->${to}`;
      assertEquals(out.cniVersion, to);
      assertNoUndefined(out, where);
      assertEquals(JSON.parse(JSON.stringify(out)), out);
      // Printing what we printed, after reading it back, changes nothing.
      assertEquals(formatResult(parseResult(out), to), out);
      const back = parseResult(out);
      assertEquals(back.dns, model.dns);

      if (to === "0.1.0" || to === "0.2.0") {
        assertKeysWithin(out, LEGACY_KEYS, where);
        for (const fam of [4, 6] as const) {
          const first = model.ips.find((ip) => family(ip.address) === fam);
          const block = out[`ip${fam}`] as { ip: string; gateway?: string; routes?: Json[] } | undefined;
          assertEquals(block?.ip, first?.address, `${where}: ip${fam} is the first IPv${fam} address`);
          assertEquals(block?.gateway, first?.gateway);
          for (const r of block?.routes ?? []) {
            assertKeysWithin(r, OLD_ROUTE_KEYS, `${where} ip${fam}.routes`);
            assertEquals(family(r.dst as string), fam);
          }
          // Every route of a family that has an address survives, in order.
          const expected = first
            ? model.routes.filter((r) => family(r.dst) === fam).map((
              r,
            ) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }))
            : undefined;
          assertEquals(block?.routes, expected?.length ? expected : undefined);
        }
        return;
      }

      assertKeysWithin(out, CURRENT_KEYS, where);
      const full = to === "1.1.0";
      const ips = (out.ips ?? []) as Json[];
      assertEquals(ips.length, model.ips.length);
      ips.forEach((ip, i) => {
        if (to.startsWith("0.")) {
          assertEquals(ip.version, String(family(ip.address as string)), `${where} ips[${i}]`);
        } else assertEquals("version" in ip, false, `${where} ips[${i}] has no version`);
      });
      for (const i of (out.interfaces ?? []) as Json[]) {
        assertKeysWithin(i, full ? NEW_INTERFACE_KEYS : OLD_INTERFACE_KEYS, `${where} interfaces`);
      }
      for (const r of (out.routes ?? []) as Json[]) {
        assertKeysWithin(r, full ? NEW_ROUTE_KEYS : OLD_ROUTE_KEYS, `${where} routes`);
      }
      // Addresses, gateways, interface indexes, route destinations and next hops all survive.
      assertEquals(back.ips, model.ips);
      assertEquals(back.routes.map((r) => [r.dst, r.gw]), model.routes.map((r) => [r.dst, r.gw]));
      assertEquals(
        back.interfaces.map((i) => [i.name, i.mac, i.sandbox]),
        model.interfaces.map((i) => [i.name, i.mac, i.sandbox]),
      );
      if (full) assertEquals(back, model);
    });
  }

  Deno.test(`a ${from} result printed in its own version comes back unchanged`, () => {
    assertEquals(formatResult(parseResult(input), from), input);
    assertEquals(
      parseResult(JSON.parse(JSON.stringify(formatResult(parseResult(input), from)))),
      parseResult(input),
    );
  });
}

Deno.test("a conversion to 1.1.0 and back to the source version is lossless", () => {
  for (const [from, input] of Object.entries(FIXTURES)) {
    const via = formatResult(parseResult(input), "1.1.0");
    assertEquals(formatResult(parseResult(via), from), input, from);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Address helpers

Deno.test("isIp tells IPv4 from IPv6 from neither", () => {
  const cases: [string, 4 | 6 | 0][] = [
    ["10.0.0.1", 4],
    ["0.0.0.0", 4],
    ["255.255.255.255", 4],
    ["::", 6],
    ["::1", 6],
    ["fe80::", 6],
    ["2001:db8::1", 6],
    ["2001:DB8:0:0:0:0:0:1", 6],
    ["::ffff:10.0.0.1", 6],
    ["1:2:3:4:5:6:1.2.3.4", 6],
    ["", 0],
    ["10.0.0", 0],
    ["10.0.0.1.5", 0],
    ["10.0.0.256", 0],
    ["010.0.0.1", 0],
    [" 10.0.0.1", 0],
    ["10.0.0.1/32", 0],
    ["1:2:3:4:5:6:7:8:9", 0],
    ["1::2::3", 0],
    [":::", 0],
    [":1::", 0],
    ["12345::", 0],
    ["fe80::1%eth0", 0],
    ["1:2:3:4:5:6:7:1.2.3.4", 0],
    ["1.2.3.4::", 0],
    ["g::1", 0],
  ];
  for (const [s, want] of cases) assertEquals(isIp(s), want, JSON.stringify(s));
});

Deno.test("parseIp prints IPv6 addresses in RFC 5952 form", () => {
  const cases: [string, string][] = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["::ffff:0a00:0001", "::ffff:10.0.0.1"],
    ["::1.2.3.4", "::102:304"],
  ];
  for (const [s, want] of cases) assertEquals(parseIp(s), { family: 6, ip: want }, s);
  assertEquals(parseIp("192.168.0.1"), { family: 4, ip: "192.168.0.1" });
});

Deno.test("parseCidr splits address and prefix and refuses malformed prefixes", () => {
  assertEquals(parseCidr("10.1.0.5/16"), { family: 4, ip: "10.1.0.5", prefix: 16 });
  assertEquals(parseCidr("0.0.0.0/0"), { family: 4, ip: "0.0.0.0", prefix: 0 });
  assertEquals(parseCidr("2001:DB8::5/128"), { family: 6, ip: "2001:db8::5", prefix: 128 });
  assertEquals(parseCidr("::/0"), { family: 6, ip: "::", prefix: 0 });
  for (
    const s of [
      "10.0.0.1",
      "10.0.0.1/",
      "10.0.0.1/33",
      "10.0.0.1/08",
      "10.0.0.1/-1",
      "10.0.0.1/2/3",
      "/24",
      "::/129",
      "fd00::1%ib0/64",
      "10.0.0.1/ 24",
    ]
  ) {
    assertEquals(parseCidr(s), null, s);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Chaining: prevResult passed through (issue 10 item 3), and results limited to the config's version (item 8)

/** What a plugin earlier in the chain (e.g. a primary-network plugin) reported. */
const PREV: Result = {
  interfaces: [{ name: "eth0", mac: "0a:58:0a:f4:00:05", sandbox: "/run/netns/pod" }, { name: "veth1" }],
  ips: [{ address: "10.244.0.5/24", gateway: "10.244.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }],
  dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"] },
};

/** What this plugin made itself. */
const OURS: Result = {
  interfaces: [{ name: "ib1", mac: "00:11:22:33:44:55", mtu: 2044, sandbox: "/run/netns/pod" }],
  ips: [{ address: "10.77.0.9/24", gateway: "10.77.0.1", interface: 0 }, {
    address: "fd00:77::9/64",
    interface: 0,
  }],
  routes: [{ dst: "10.99.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.244.0.1" }],
  dns: { nameservers: ["10.77.0.53", "10.96.0.10"], domain: "ib.example", search: ["ib.example"] },
};

Deno.test("mergePrevResult keeps prevResult, appends ours and points our IPs at our interface", () => {
  assertEquals(mergePrevResult(PREV, OURS), {
    interfaces: [...PREV.interfaces, OURS.interfaces[0]!],
    ips: [PREV.ips[0]!, { ...OURS.ips[0]!, interface: 2 }, { ...OURS.ips[1]!, interface: 2 }],
    // The default route both list is one route in the kernel: listed once.
    routes: [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }, { dst: "10.99.0.0/16" }],
    dns: {
      nameservers: ["10.96.0.10", "10.77.0.53"],
      domain: "ib.example",
      search: ["svc.cluster.local", "ib.example"],
      options: ["ndots:5"],
    },
  });
});

Deno.test("mergePrevResult without prevResult is our result unchanged", () => {
  assertEquals(mergePrevResult(null, OURS), OURS);
  const empty: Result = { interfaces: [], ips: [], routes: [], dns: {} };
  assertEquals(mergePrevResult(empty, OURS), OURS);
});

Deno.test("mergePrevResult keeps prevResult's DNS domain when we set none", () => {
  const merged = mergePrevResult({ ...PREV, dns: { domain: "cluster.local" } }, { ...OURS, dns: {} });
  assertEquals(merged.dns, { domain: "cluster.local" });
});

/**
 * Every version the config may have: the merged result printed in that version, read back as a runtime would
 * read it, holds prevResult's part first and ours after, with our IPs pointing at our interface.
 */
for (const version of SUPPORTED_VERSIONS) {
  Deno.test(`a chained ADD's output in cniVersion ${version} keeps prevResult and adds ours`, () => {
    // prevResult reaches the plugin in the config's own version: build it that way from PREV.
    const prevJson = formatResult(PREV, version);
    const prev = parseResult({ cniVersion: version, ...prevJson }, "prevResult");
    const printed = formatResult(mergePrevResult(prev, OURS), version);
    assertEquals(printed.cniVersion, version);
    const back = parseResult(printed);
    if (version < "0.3.0") {
      // One address per family and no interfaces list: the first of each family is prevResult's, as
      // libcni's conversion of a newer result to 0.2.0 keeps; our IPv6 address is the only IPv6 one.
      assertEquals(back.interfaces, []);
      assertEquals(back.ips.map((ip) => ip.address), ["10.244.0.5/24", "fd00:77::9/64"]);
      assertEquals(back.routes.map((r) => r.dst), ["0.0.0.0/0", "10.99.0.0/16"]);
    } else {
      assertEquals(back.interfaces.map((i) => i.name), ["eth0", "veth1", "ib1"]);
      assertEquals(back.ips.map((ip) => [ip.address, ip.interface]), [
        ["10.244.0.5/24", 0],
        ["10.77.0.9/24", 2],
        ["fd00:77::9/64", 2],
      ]);
      assertEquals(back.routes, [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }, { dst: "10.99.0.0/16" }]);
      assertEquals(back.interfaces[2]!.mtu, version === "1.1.0" ? 2044 : undefined);
    }
    assertEquals(back.dns.nameservers, ["10.96.0.10", "10.77.0.53"]);
  });
}

/** A 1.1.0 IPAM result using every field 1.1.0 added. */
const FULL_110: Result = {
  interfaces: [{ name: "ib1", mac: "00:11:22:33:44:55", mtu: 2044, socketPath: "/s", pciID: "0000:01:00.0" }],
  ips: [{ address: "10.77.0.9/24", gateway: "10.77.0.1" }],
  routes: [
    { dst: "10.99.0.0/16", gw: "10.77.0.254", table: 100, priority: 50, scope: 0, mtu: 1400, advmss: 1360 },
    { dst: "0.0.0.0/0" },
  ],
  dns: { nameservers: ["10.77.0.53"] },
};

Deno.test("limitToVersion keeps a 1.1.0 result whole in 1.1.0", () => {
  assertEquals(limitToVersion(FULL_110, "1.1.0"), FULL_110);
});

for (const version of SUPPORTED_VERSIONS.filter((v) => v !== "1.1.0")) {
  Deno.test(`limitToVersion ${version}: keeps what the version prints, so printing and reading agree`, () => {
    const limited = limitToVersion(FULL_110, version);
    assertEquals(limited.routes, [{ dst: "10.99.0.0/16", gw: "10.77.0.254" }, { dst: "0.0.0.0/0" }]);
    assertEquals(limited.interfaces, [{ name: "ib1", mac: "00:11:22:33:44:55" }]);
    assertEquals(limited.ips, FULL_110.ips);
    if (version >= "0.3.0") {
      // What ADD applies (limited) is exactly what CHECK reads back from ADD's printed result.
      const printed = formatResult(limited, version);
      assertEquals(limitToVersion(parseResult(printed, "prevResult"), version), limited);
    }
  });
}
