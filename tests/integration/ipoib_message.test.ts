/**
 * Message-level proof of the IPoIB request. No InfiniBand exists here, so the kernel refuses
 * both requests; what is compared is what was sent. The RTM_NEWLINK of
 * `Netlink.createLink` with lib/ipoib.ts's request (run by fixtures/send_ipoib.ts) and the one of iproute2's
 * `ip link add name N link P type ipoib pkey K mode M umcast U` are captured with
 * `strace -f -xx -e trace=sendmsg -e write=all` and decoded here.
 *
 * Differences tolerated, and why:
 * - nlmsg_seq: each sender numbers its own requests.
 * - nlmsg_pid: libnl fills in its socket's port id, iproute2 leaves 0 (the kernel ignores it).
 * - NLA_F_NESTED (0x8000) on IFLA_LINKINFO and IFLA_INFO_DATA: libnl 3.7's nla_nest_start sets
 *   it, iproute2 does not; the kernel accepts both.
 * - A trailing NUL in IFLA_INFO_KIND: allowed, although both send "ipoib" without one today.
 * Everything else, nlmsg_flags (REQUEST|ACK|EXCL|CREATE), the ifinfomsg, attribute order,
 * lengths, values and padding, must be identical.
 */

import { assert, assertEquals } from "@std/assert";
import { run, TestNetns } from "../../support/net.ts";

const RTM_NEWLINK = 16;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
const IFLA_IFNAME = 3;
const IFLA_LINK = 5;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_IPOIB_PKEY = 1;
const IFLA_IPOIB_MODE = 2;
const IFLA_IPOIB_UMCAST = 3;

/** One rtattr: its type without flags, whether NLA_F_NESTED was set, payload, children. */
interface Attr {
  type: number;
  nestedFlag: boolean;
  payload: Uint8Array;
  children?: Attr[];
}

interface NewLink {
  raw: Uint8Array;
  flags: number;
  seq: number;
  pid: number;
  ifinfomsg: Uint8Array;
  attrs: Attr[];
}

/** The byte dumps strace prints after each sendmsg line, one per call. */
export function sendmsgDumps(straceText: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  let current: number[] | null = null;
  for (const line of straceText.split("\n")) {
    if (/^\d+\s+sendmsg\(/.test(line)) {
      if (current) out.push(Uint8Array.from(current));
      current = [];
      continue;
    }
    const dump = /^ \| [0-9a-f]{5}\s{2}((?:[0-9a-f]{2}\s{1,2})+)/.exec(line);
    if (dump && current) {
      // At most 16 bytes a line: the ASCII column of a full line could look like more hex.
      for (const h of dump[1]!.trim().split(/\s+/).slice(0, 16)) current.push(parseInt(h, 16));
    } else if (!line.startsWith(" * ") && current) {
      out.push(Uint8Array.from(current));
      current = null;
    }
  }
  if (current) out.push(Uint8Array.from(current));
  return out;
}

/** Decodes rtattrs; `nests` says which types hold attributes (the flag alone cannot tell). */
function decodeAttrs(buf: Uint8Array, nests: (type: number, depth: number) => boolean, depth = 0): Attr[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const attrs: Attr[] = [];
  for (let at = 0; at + 4 <= buf.length;) {
    const len = view.getUint16(at, true);
    const rawType = view.getUint16(at + 2, true);
    assert(len >= 4 && at + len <= buf.length, `bad rtattr length ${len} at ${at}`);
    const type = rawType & NLA_TYPE_MASK;
    const payload = buf.subarray(at + 4, at + len);
    const attr: Attr = { type, nestedFlag: (rawType & NLA_F_NESTED) !== 0, payload };
    if (nests(type, depth)) attr.children = decodeAttrs(payload, nests, depth + 1);
    attrs.push(attr);
    at += (len + 3) & ~3;
  }
  return attrs;
}

/** The one RTM_NEWLINK among the captured messages, decoded. */
function decodeNewLink(messages: Uint8Array[]): NewLink {
  const found = messages.filter((m) =>
    m.length >= 16 && new DataView(m.buffer).getUint16(4, true) === RTM_NEWLINK
  );
  assertEquals(found.length, 1, "exactly one RTM_NEWLINK");
  const raw = found[0]!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  assertEquals(view.getUint32(0, true), raw.length, "nlmsg_len covers the captured bytes");
  // Top level: IFLA_LINKINFO is a nest; inside it IFLA_INFO_DATA is.
  const nests = (type: number, depth: number) =>
    (depth === 0 && type === IFLA_LINKINFO) || (depth === 1 && type === IFLA_INFO_DATA);
  return {
    raw,
    flags: view.getUint16(6, true),
    seq: view.getUint32(8, true),
    pid: view.getUint32(12, true),
    ifinfomsg: raw.subarray(16, 32),
    attrs: decodeAttrs(raw.subarray(32), nests),
  };
}

function child(attrs: Attr[] | undefined, type: number): Attr | undefined {
  return attrs?.find((a) => a.type === type);
}

function u16(a: Attr | undefined): number | undefined {
  return a ? new DataView(a.payload.buffer, a.payload.byteOffset).getUint16(0, true) : undefined;
}

function text(a: Attr | undefined): string | undefined {
  if (!a) return undefined;
  const nul = a.payload.indexOf(0);
  return new TextDecoder().decode(nul >= 0 ? a.payload.subarray(0, nul) : a.payload);
}

/** The message with seq and pid zeroed and NLA_F_NESTED cleared on the two nests. */
function normalised(m: NewLink): Uint8Array {
  const b = m.raw.slice();
  const view = new DataView(b.buffer);
  view.setUint32(8, 0, true);
  view.setUint32(12, 0, true);
  const clear = (attrs: Attr[]) => {
    for (const a of attrs) {
      if (!a.children) continue;
      const at = a.payload.byteOffset - m.raw.byteOffset - 4;
      view.setUint16(at + 2, view.getUint16(at + 2, true) & ~NLA_F_NESTED, true);
      clear(a.children);
    }
  };
  clear(m.attrs);
  return b;
}

function capture(
  ns: TestNetns,
  dir: string,
  tag: string,
  argv: string[],
): { messages: Uint8Array[]; stdout: string } {
  const file = `${dir}/${tag}.strace`;
  const out = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns.name,
      "strace",
      "-f",
      "-xx",
      "-e",
      "trace=sendmsg",
      "-e",
      "write=all",
      "-o",
      file,
      ...argv,
    ],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const dec = new TextDecoder();
  return {
    messages: sendmsgDumps(Deno.readTextFileSync(file)),
    stdout: dec.decode(out.stdout) + dec.decode(out.stderr),
  };
}

interface Case {
  pkey?: number;
  mode?: 0 | 1;
  umcast?: boolean;
}

const CASES: Case[] = [
  { pkey: 0x8001, mode: 1, umcast: true },
  { pkey: 0x7fff, mode: 0, umcast: false },
  { mode: 1 },
  {},
];

const fixture = new URL("./fixtures/send_ipoib.ts", import.meta.url).pathname;

for (const c of CASES) {
  const label = `pkey ${c.pkey?.toString(16) ?? "-"} mode ${c.mode ?? "-"} umcast ${c.umcast ?? "-"}`;
  Deno.test(`IPoIB RTM_NEWLINK equals iproute2's (${label})`, () => {
    using ns = TestNetns.createSync("nli");
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "ipoib-msg-" });
    try {
      run("ip", "-n", ns.name, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1");
      const parentIndex = JSON.parse(run("ip", "-n", ns.name, "-j", "link", "show", "pv0"))[0]
        .ifindex as number;

      const ours = capture(ns, dir, "ours", [
        Deno.execPath(),
        "run",
        "--allow-ffi",
        "--allow-read",
        fixture,
        "ibx0",
        "pv0",
        c.pkey === undefined ? "-" : `0x${c.pkey.toString(16)}`,
        c.mode === undefined ? "-" : String(c.mode),
        c.umcast === undefined ? "-" : c.umcast ? "1" : "0",
      ]);
      const report = JSON.parse(ours.stdout.trim().split("\n").at(-1)!);
      assertEquals(report.errno, 95, ours.stdout);
      assertEquals(report.kernelMessage, "Unknown device type");

      const ipArgs = ["link", "add", "name", "ibx0", "link", "pv0", "type", "ipoib"];
      if (c.pkey !== undefined) ipArgs.push("pkey", `0x${c.pkey.toString(16)}`);
      if (c.mode !== undefined) ipArgs.push("mode", c.mode === 1 ? "connected" : "datagram");
      if (c.umcast !== undefined) ipArgs.push("umcast", c.umcast ? "1" : "0");
      const theirs = capture(ns, dir, "iproute2", ["ip", ...ipArgs]);
      assert(theirs.stdout.includes("Unknown device type"), theirs.stdout);

      const a = decodeNewLink(ours.messages);
      const b = decodeNewLink(theirs.messages);

      // Header: same flags; seq and pid are the sender's own.
      assertEquals(a.flags, 0x605, "NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE");
      assertEquals(a.flags, b.flags);
      assertEquals(a.ifinfomsg, b.ifinfomsg);

      // Attribute by attribute, in order.
      assertEquals(a.attrs.map((x) => x.type), b.attrs.map((x) => x.type));
      assertEquals(a.attrs.map((x) => x.type), [IFLA_LINK, IFLA_IFNAME, IFLA_LINKINFO]);
      for (const side of [a, b]) {
        assertEquals(text(child(side.attrs, IFLA_IFNAME)), "ibx0");
        assertEquals(child(side.attrs, IFLA_IFNAME)!.payload.at(-1), 0, "IFLA_IFNAME carries its NUL");
        const link = child(side.attrs, IFLA_LINK)!;
        assertEquals(
          new DataView(link.payload.buffer, link.payload.byteOffset).getUint32(0, true),
          parentIndex,
        );
        const info = child(side.attrs, IFLA_LINKINFO)!.children;
        assertEquals(text(child(info, IFLA_INFO_KIND)), "ipoib");
        const data = child(info, IFLA_INFO_DATA)?.children;
        const anyData = c.pkey !== undefined || c.mode !== undefined || c.umcast !== undefined;
        assertEquals(data !== undefined, anyData, "IFLA_INFO_DATA only when something goes in it");
        assertEquals(u16(child(data, IFLA_IPOIB_PKEY)), c.pkey);
        assertEquals(u16(child(data, IFLA_IPOIB_MODE)), c.mode);
        assertEquals(
          u16(child(data, IFLA_IPOIB_UMCAST)),
          c.umcast === undefined ? undefined : c.umcast ? 1 : 0,
        );
      }
      // The tolerated differences, made explicit.
      const infoA = child(a.attrs, IFLA_LINKINFO)!;
      const infoB = child(b.attrs, IFLA_LINKINFO)!;
      assertEquals([infoA.nestedFlag, infoB.nestedFlag], [true, false]);
      assertEquals(text(child(infoA.children, IFLA_INFO_KIND)), text(child(infoB.children, IFLA_INFO_KIND)));
      // Byte for byte once seq, pid and NLA_F_NESTED are set aside (this includes the kind's
      // length: "ipoib" without a NUL on both sides).
      assertEquals(normalised(a), normalised(b));

      // Both refused: nothing named ibx0 exists.
      const links = JSON.parse(run("ip", "-n", ns.name, "-j", "link", "show")) as { ifname: string }[];
      assertEquals(links.map((l) => l.ifname).sort(), ["lo", "pv0", "pv1"]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("strace dump decoder", () => {
  const sample = [
    "42 sendmsg(3, {...}, 0) = 20",
    " * 20 bytes in buffer 0",
    " | 00000  14 00 00 00 10 00 05 06  01 00 00 00 00 00 00 00  ................ |",
    " | 00010  08 00 05 00                                       ....             |",
    "42 +++ exited with 0 +++",
  ].join("\n");
  assertEquals(sendmsgDumps(sample), [
    Uint8Array.from([0x14, 0, 0, 0, 0x10, 0, 5, 6, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 5, 0]),
  ]);
});
