/**
 * podman (Debian's 4.3, CNI network backend) runs busybox containers on networks whose first plugin is
 * ipoib (the stand-in entry: the full plugin with a macvlan-on-veth child in place of IPoIB). Each
 * scenario checks what the container sees, what podman sent each plugin, and that removing the container
 * leaves no link, lease or namespace behind.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { sh } from "../../support/net.ts";
import { exists } from "../../support/fs.ts";
import { filesUnder, type Invocation, type Json, PluginDir, Stage, TempDir } from "./fixtures.ts";
import { BUSYBOX_IMAGE, Podman } from "./podman.ts";

/** What a container showed from inside, and what podman asked our plugin for to start it. */
interface Inside {
  addr: string;
  route: string;
  ping: string;
  /** Outputs of the extra commands, in order. */
  more: string[];
  netns: string;
  add: Invocation;
}

/**
 * Starts a container on the stage's network, looks around inside (`ip addr`, `ip route`, a ping of the
 * gateway, then `more` commands), runs `whileRunning`, removes it, and returns what it saw.
 */
async function runContainer(
  podman: Podman,
  s: Stage,
  name: string,
  opts: { args?: string[]; more?: string[][]; whileRunning?: () => void } = {},
): Promise<Inside> {
  await podman.ok(
    "run",
    "--detach",
    "--name",
    name,
    "--network",
    s.net,
    "--cap-add",
    "NET_RAW", // busybox ping opens a raw socket
    ...(opts.args ?? []),
    BUSYBOX_IMAGE,
    "sleep",
    "600",
  );
  const add = s.plugins.one("ipoib", "ADD");
  const netns = add.env.CNI_NETNS ?? "";
  assertMatch(netns, /^\/run\/netns\/[^/]+$/);
  const kind = JSON.parse(await sh("ip", "-n", netns.split("/").pop()!, "-d", "-j", "link", "show", "eth0"));
  assertEquals(kind[0]?.linkinfo?.info_kind, "macvlan", "eth0 in the container is our child");
  assertEquals(s.leases.leases().length, 1, "one host-local lease while the container runs");

  const addr = await podman.ok("exec", name, "ip", "addr", "show", "eth0");
  const route = await podman.ok("exec", name, "ip", "route");
  const ping = await podman.ok("exec", name, "ping", "-c", "1", "-W", "5", s.wire.gateway);
  const more: string[] = [];
  for (const cmd of opts.more ?? []) more.push(await podman.ok("exec", name, ...cmd));
  opts.whileRunning?.();

  await podman.ok("rm", "--force", "--time", "0", name);
  return { addr, route, ping, more, netns, add };
}

/** After removal: no child link, no lease, no namespace, DEL logged by the plugin. */
async function assertNothingLeft(s: Stage, inside: Inside): Promise<void> {
  assertEquals((await s.wire.master.children()).map((l) => l.ifname), [], "child link left on the host");
  assertEquals(s.leases.leases(), [], "host-local lease left");
  assert(!exists(inside.netns), `podman left ${inside.netns}`);
  const log = await Deno.readTextFile(s.logFile);
  assertMatch(log, /ADD container=\S+ netns=\S+ ifname=eth0 ADD: done/);
  assertMatch(log, /DEL container=\S+ netns=\S+ ifname=eth0 delete link: ok/);
  assertMatch(log, /DEL container=\S+ netns=\S+ ifname=eth0 DEL: done/);
}

/** What podman sent ipoib and what ipoib sent host-local, for a network without chaining. */
function assertSent(s: Stage, version: string, container: string): void {
  const add = s.plugins.one("ipoib", "ADD");
  const del = s.plugins.one("ipoib", "DEL");
  assertEquals(s.plugins.verbs("ipoib"), ["ADD", "DEL"], "podman never sends CHECK");
  // podman asks each plugin for its versions (libcni's VERSION probe) before using it.
  assert(s.plugins.invocations("ipoib").some((i) => i.command === "VERSION"), "no VERSION probe recorded");
  for (const i of [add, del]) {
    assertEquals(i.code, 0, `${i.command}: ${i.stdoutText}`);
    assertEquals(i.env.CNI_IFNAME, "eth0");
    assertEquals(i.stdin.cniVersion, version);
    assertEquals(i.stdin.name, s.net);
    assertEquals(i.stdin.logFile, s.logFile, "fields podman does not know survive its re-serialisation");
    assertEquals(i.env.CNI_ARGS?.split(";").slice(0, 2), ["IgnoreUnknown=1", `K8S_POD_NAME=${container}`]);
  }
  assertEquals(del.env.CNI_CONTAINERID, add.env.CNI_CONTAINERID);
  assertEquals(add.stdin.prevResult, undefined);
  assertEquals(add.stdout?.cniVersion, version);
  assertEquals(del.stdin.prevResult, add.stdout, "DEL carries the cached ADD result as prevResult");
  // The IPAM plugin gets exactly the bytes podman sent us, with podman's CNI_ARGS.
  for (const verb of ["ADD", "DEL"]) {
    const ours = s.plugins.one("ipoib", verb);
    const ipam = s.plugins.one("host-local", verb);
    assertEquals(ipam.stdinText, ours.stdinText);
    assertEquals(ipam.env.CNI_ARGS, ours.env.CNI_ARGS);
  }
}

/** The IPv4 address and MTU `ip addr show eth0` printed (busybox ip has no JSON output). */
function parseAddr(text: string): { address: string; mtu: number } {
  const address = /inet (\d+\.\d+\.\d+\.\d+\/\d+)/.exec(text)?.[1] ?? "";
  const mtu = Number(/ mtu (\d+)/.exec(text)?.[1]);
  return { address, mtu };
}

Deno.test("podman with the CNI backend runs containers on ipoib networks", async (t) => {
  await using tmp = await TempDir.create("ipoib-e2e-pm-");
  const plugins = await PluginDir.create(tmp);
  await using podman = await Podman.create(tmp, plugins);
  console.log(`podman ${await podman.version()}`);

  /** One scenario on a fresh stage; its containers, namespaces and network are removed after. */
  const scenario = (name: string, prefix: string, body: (s: Stage) => Promise<void>) =>
    t.step(name, () =>
      Stage.run(tmp, plugins, prefix, async (s) => {
        try {
          await body(s);
        } finally {
          await podman.removeAll(plugins.invocations("ipoib").map((i) => i.env.CNI_NETNS ?? ""));
          await podman.removeNetwork(s.net);
        }
      }));

  for (const [version, prefix] of [["0.4.0", "10.213.4"], ["1.0.0", "10.213.10"]] as const) {
    await scenario(
      `cniVersion ${version}: the container gets address and default route, pings the master side; removal leaves nothing`,
      prefix,
      async (s) => {
        await podman.addNetwork(s.conflist(version));
        const container = `e2e-${version.replaceAll(".", "")}`;
        const inside = await runContainer(podman, s, container);
        const { address, mtu } = parseAddr(inside.addr);
        assertEquals(address, `${prefix}.10/24`);
        assertEquals(mtu, 1500);
        assertEquals(address, ((inside.add.stdout?.ips as Json[])[0]!).address, "address as the result says");
        assertMatch(
          inside.route,
          new RegExp(`default via ${s.wire.gateway.replaceAll(".", "\\.")} dev eth0`),
        );
        assertMatch(inside.ping, / 1 packets received/);
        await assertNothingLeft(s, inside);
        assertSent(s, version, container);
      },
    );
  }

  await scenario(
    "a chain where tuning follows ipoib: tuning gets our result as prevResult and its settings reach the container",
    "10.213.20",
    async (s) => {
      await podman.addNetwork(s.conflist("1.0.0", { tuning: s.tuning("eth0", { mtu: 1400 }) }));
      const inside = await runContainer(podman, s, "e2e-tuning", {
        more: [["cat", "/sys/class/net/eth0/flags"], ["cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"]],
        whileRunning: () =>
          assertEquals(filesUnder(s.tuningDir).length, 1, "tuning saved the original settings"),
      });
      const [flags, arpIgnore] = inside.more;
      assertEquals(parseAddr(inside.addr).mtu, 1400, "tuning's mtu applied after our ADD");
      assert((Number.parseInt(flags ?? "", 16) & 0x100) !== 0, `IFF_PROMISC not set: ${flags}`);
      assertEquals(arpIgnore?.trim(), "1", "tuning's sysctl applied");
      assertMatch(inside.ping, / 1 packets received/);
      await assertNothingLeft(s, inside);
      assertEquals(filesUnder(s.tuningDir), [], "tuning's DEL removed its state");

      assertEquals(s.chainOrder(), ["ipoib ADD", "tuning ADD", "tuning DEL", "ipoib DEL"]);
      const ourAdd = s.plugins.one("ipoib", "ADD");
      const tuningAdd = s.plugins.one("tuning", "ADD");
      assertEquals(tuningAdd.stdin.prevResult, ourAdd.stdout, "tuning receives our ADD result");
      // DEL goes in reverse order, both with the list's final (cached) result.
      assertEquals(s.plugins.one("tuning", "DEL").stdin.prevResult, tuningAdd.stdout);
      assertEquals(s.plugins.one("ipoib", "DEL").stdin.prevResult, tuningAdd.stdout);
    },
  );

  await scenario(
    "podman --ip reaches host-local through CNI_ARGS and the container gets that address",
    "10.213.30",
    async (s) => {
      await podman.addNetwork(s.conflist("1.0.0"));
      const inside = await runContainer(podman, s, "e2e-static", { args: ["--ip", "10.213.30.33"] });
      assertEquals(parseAddr(inside.addr).address, "10.213.30.33/24");
      assertMatch(inside.ping, / 1 packets received/);
      const add = s.plugins.one("ipoib", "ADD");
      assert(add.env.CNI_ARGS?.split(";").includes("IP=10.213.30.33"), add.env.CNI_ARGS);
      assertEquals(add.stdin.runtimeConfig, undefined, "podman 4.3 uses CNI_ARGS, not runtimeConfig.ips");
      assertEquals(s.plugins.one("host-local", "ADD").env.CNI_ARGS, add.env.CNI_ARGS);
      await assertNothingLeft(s, inside);
    },
  );
});
