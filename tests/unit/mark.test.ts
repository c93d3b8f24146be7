import { assert, assertEquals } from "@std/assert";
import { attachmentMark, MARK_MAX_BYTES, MARK_PREFIX, markFields, parseMark } from "../../lib/mark.ts";

const CID = "3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755";

Deno.test("a mark names the network, container id and ifname as they are when short and plain", async () => {
  assertEquals(await attachmentMark("ib-net", CID, "net1"), `ipoib-cni/1 ib-net ${CID} net1`);
  assertEquals(parseMark(`ipoib-cni/1 ib-net ${CID} net1`), {
    network: "ib-net",
    containerId: CID,
    ifname: "net1",
  });
});

Deno.test("a field that is long or holds other characters is '#' and 32 hex digits of its SHA-256", async () => {
  const longCid = "c".repeat(129);
  const m = await attachmentMark("my net/α", longCid, "if#1");
  const [prefix, network, cid, ifname] = m.split(" ");
  assertEquals(prefix, MARK_PREFIX);
  for (const f of [network, cid, ifname]) assert(/^#[0-9a-f]{32}$/.test(f!), f);
  // SHA-256("my net/α"), computed independently of lib/mark.ts
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("my net/α")));
  assertEquals(
    network,
    "#" + Array.from(digest.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join(""),
  );
  assertEquals(parseMark(m), { network: network!, containerId: cid!, ifname: ifname! });
  // The limits: 64 for the network, 128 for the container id, 15 for the ifname.
  assertEquals(
    (await markFields("n".repeat(64), "c".repeat(128), "i".repeat(15))).containerId,
    "c".repeat(128),
  );
  assert((await markFields("n".repeat(65), "c", "i")).network.startsWith("#"));
});

Deno.test("the longest mark fits IFALIASZ (255 bytes and the NUL)", async () => {
  const m = await attachmentMark("n".repeat(64), "c".repeat(128), "i".repeat(15));
  assert(new TextEncoder().encode(m).length <= MARK_MAX_BYTES, `${m.length}`);
  const hashed = await attachmentMark("n".repeat(1000), "c".repeat(1000), "if:1");
  assert(hashed.length <= MARK_MAX_BYTES);
});

Deno.test("marks differ when any field differs, also where plain concatenation would not", async () => {
  const a = await attachmentMark("n", "ab", "c");
  assert(a !== await attachmentMark("n", "a", "bc"));
  assert(a !== await attachmentMark("m", "ab", "c"));
});

Deno.test("parseMark: anything but a mark of this format is null", () => {
  for (
    const alias of [
      null,
      "",
      "uplink to rack 4",
      `ipoib-cni/2 n ${CID} net1`,
      `ipoib-cni/1 n ${CID}`,
      `ipoib-cni/1 n ${CID} net1 extra`,
      `ipoib-cni/1 n  net1`,
      "ipoib-cni/1 n #abc net1",
      `ipoib-cni/1 n/x ${CID} net1`,
    ]
  ) {
    assertEquals(parseMark(alias), null, String(alias));
  }
});
