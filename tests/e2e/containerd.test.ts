/**
 * containerd (Debian's 1.6) drives ipoib (the stand-in entry) the two ways it can:
 * - its CRI plugin, the path kubelet uses, through a CRI client of ours (tests/e2e/cri): RunPodSandbox,
 *   PodSandboxStatus, StopPodSandbox (twice, as kubelet may) and RemovePodSandbox, with the Kubernetes
 *   CNI_ARGS, DEL with the pod's namespace present and DEL with CNI_NETNS="" once it is gone;
 * - `ctr run --cni`, which reads /etc/cni/net.d and /opt/cni/bin only (bind mounts of the test's own).
 * Each scenario checks what the plugin received and that nothing is left: no link, lease, namespace pin or
 * libcni cache entry; after the suite, no containerd, shim or container process.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { exists } from "../../support/fs.ts";
import { suffix } from "../../support/net.ts";
import { ROOT } from "../../support/run.ts";
import { filesUnder, type Invocation, type Json, PluginDir, Stage, TempDir } from "./fixtures.ts";
import { Containerd, POD_IMAGE, type PodMeta, processesNaming } from "./containerd.ts";

/** The Kubernetes namespace of every pod here. */
const K8S_NAMESPACE = "ipoib-e2e";

/** A pod's metadata with unique name and UID. */
function newPod(): PodMeta {
  return { name: `e2e-pod-${suffix(8)}`, namespace: K8S_NAMESPACE, uid: crypto.randomUUID() };
}

/** CNI_ARGS split into its key=value entries, sorted (containerd's order is not part of any contract). */
function cniArgs(i: Invocation): string[] {
  return (i.env.CNI_ARGS ?? "").split(";").sort();
}

/** Host-local lease files (one per address) below a lease directory tree. */
function leaseFiles(dir: string): string[] {
  return filesUnder(dir).filter((f) => !/(^|\/)(lock|last_reserved_ip\.\d+)$/.test(f));
}

/** The network configurations of images/ipoib-network-attachment-definition.yaml (its `config: |` blocks). */
async function readmeNetworks(): Promise<Json[]> {
  const yaml = await Deno.readTextFile(`${ROOT}/images/ipoib-network-attachment-definition.yaml`);
  const out: Json[] = [];
  for (const m of yaml.matchAll(/^(\s*)config: \|\n((?:\1\s+.*\n|\s*\n)+)/gm)) out.push(JSON.parse(m[2]!));
  return out;
}

/** IPv4 address/prefix and MTU of `ifname` as `ip -j addr` shows it inside a pod's namespace. */
async function podLink(
  ctrd: Containerd,
  netns: string,
  ifname = "eth0",
): Promise<{ addresses: string[]; mtu: number; kind: string }> {
  const [link] = JSON.parse(await ctrd.inNetns(netns, "ip", "-d", "-j", "addr", "show", "dev", ifname));
  return {
    addresses: (link?.addr_info ?? []).filter((a: Json) => a.family === "inet")
      .map((a: Json) => `${a.local}/${a.prefixlen}`),
    mtu: link?.mtu,
    kind: link?.linkinfo?.info_kind,
  };
}

Deno.test("containerd's CRI plugin and ctr run --cni start pods on ipoib networks", async (t) => {
  await using tmp = await TempDir.create("ipoib-e2e-ctrd-");
  const plugins = await PluginDir.create(tmp);
  const ctrd = await Containerd.start(tmp, plugins);
  try {
    console.log(await ctrd.version());

    /** One scenario on a fresh stage; every sandbox it started is stopped and removed after. */
    const criScenario = (
      name: string,
      prefix: string,
      body: (s: Stage, started: string[]) => Promise<void>,
      mtu?: number,
    ) =>
      t.step(`CRI: ${name}`, () =>
        Stage.run(tmp, plugins, prefix, async (s) => {
          const started: string[] = [];
          try {
            await body(s, started);
          } finally {
            for (const id of started) {
              await ctrd.cri("stop", "-id", id);
              await ctrd.cri("remove", "-id", id);
            }
          }
        }, mtu));

    /**
     * Runs a pod through the whole CRI life cycle on the network CRI has loaded and checks every step:
     * ADD with the Kubernetes CNI_ARGS, the address PodSandboxStatus reports, DEL with the namespace on the
     * first StopPodSandbox, DEL with CNI_NETNS="" on the second and on RemovePodSandbox, nothing left.
     * `whileRunning` looks at the pod before it is stopped. Returns the ADD invocation and what the pod's
     * interface looked like.
     */
    const podLifeCycle = async (
      s: Stage,
      started: string[],
      leaseDir: string,
      whileRunning?: (netns: string) => Promise<void>,
    ): Promise<{ add: Invocation; link: { addresses: string[]; mtu: number; kind: string } }> => {
      const pod = newPod();
      const id = await ctrd.runPodSandbox(pod);
      started.push(id);

      const add = s.plugins.one("ipoib", "ADD");
      assertEquals(add.code, 0, add.stdoutText);
      assertEquals(
        cniArgs(add),
        [
          "IgnoreUnknown=1",
          `K8S_POD_INFRA_CONTAINER_ID=${id}`,
          `K8S_POD_NAME=${pod.name}`,
          `K8S_POD_NAMESPACE=${pod.namespace}`,
          `K8S_POD_UID=${pod.uid}`,
        ],
      );
      assertEquals(add.env.CNI_CONTAINERID, id);
      assertEquals(add.env.CNI_IFNAME, "eth0");
      assertEquals(add.env.CNI_PATH, plugins.dir);
      const netns = add.env.CNI_NETNS ?? "";
      assert(netns.startsWith(`${ctrd.dir}/state/io.containerd.grpc.v1.cri/netns/`), netns);
      assertEquals(s.plugins.one("loopback", "ADD").code, 0, "kubelet's path sets up lo as well");

      const link = await podLink(ctrd, netns);
      assertEquals(link.kind, "macvlan", "eth0 in the pod is our child");
      assertEquals(link.addresses.length, 1, JSON.stringify(link));
      const status = await ctrd.podSandboxStatus(id);
      assertEquals(status.state, "SANDBOX_READY");
      assertEquals(status.ip, link.addresses[0]!.split("/")[0], "PodSandboxStatus reports the pod's address");
      assertEquals(status.info.info?.netNamespaceClosed, false);
      assertEquals(leaseFiles(leaseDir).length, 1, "one lease while the pod runs");
      await whileRunning?.(netns);

      // kubelet stops a sandbox at least once before removing it, and may stop it again.
      await ctrd.stopPodSandbox(id);
      const [del] = s.plugins.invocations("ipoib").filter((i) => i.command === "DEL");
      assertEquals(del?.code, 0, del?.stdoutText);
      assertEquals(del?.env.CNI_NETNS, netns, "the first DEL has the pod's namespace");
      // libcni sends the cached result as prevResult from 0.4.0 on ("" means 0.1.0).
      const cached = ["", "0.1.0", "0.2.0", "0.3.0", "0.3.1"].includes(String(add.stdin.cniVersion ?? ""))
        ? undefined
        : add.stdout;
      assertEquals(del?.stdin.prevResult, cached, "DEL carries the cached ADD result from 0.4.0 on");
      assertEquals(cniArgs(del!), cniArgs(add));
      assertEquals((await s.wire.master.children()).map((l) => l.ifname), [], "child link left on the host");
      assertEquals(leaseFiles(leaseDir), [], "lease left after StopPodSandbox");
      assert(!exists(netns), `containerd kept the pod namespace pin ${netns}`);
      assertEquals((await ctrd.podSandboxStatus(id)).state, "SANDBOX_NOTREADY");

      await ctrd.stopPodSandbox(id);
      await ctrd.removePodSandbox(id);
      started.splice(started.indexOf(id), 1);
      const dels = s.plugins.invocations("ipoib").filter((i) => i.command === "DEL");
      assertEquals(
        s.plugins.verbs("ipoib"),
        ["ADD", "DEL", "DEL", "DEL"],
        "Stop, Stop, Remove: one DEL each",
      );
      for (const later of dels.slice(1)) {
        assertEquals(later.env.CNI_NETNS, "", "DEL once the namespace is gone");
        assertEquals(later.code, 0, later.stdoutText);
      }
      const gone = await ctrd.cri("status", "-id", id);
      assertMatch(gone.stderr, /NotFound/, "RemovePodSandbox removed the sandbox");
      assertEquals(ctrd.cachedResults().filter((f) => f.includes(id)), [], "libcni cache entry left");
      assertEquals(leaseFiles(leaseDir), []);
      return { add, link };
    };

    await criScenario(
      "a 1.0.0 conflist: address, ping, Kubernetes CNI_ARGS, DEL with and without the namespace",
      "10.216.10",
      async (s, started) => {
        await ctrd.setCriNetwork(s.conflist("1.0.0"));
        const { add, link } = await podLifeCycle(s, started, s.leases.dir, async (netns) => {
          const ping = await ctrd.inNetns(netns, "busybox", "ping", "-c", "1", "-W", "5", s.wire.gateway);
          assertMatch(ping, / 1 packets received/, "the pod reaches the far end of the master");
        });
        assertEquals(add.stdin.cniVersion, "1.0.0");
        assertEquals(add.stdout?.cniVersion, "1.0.0");
        assertEquals(link.addresses, [`${s.wire.prefix}.10/24`]);
        assertEquals(link.mtu, 1500);
      },
    );

    await criScenario(
      'a .conf without cniVersion (libcni sends ""): the pod starts and is torn down',
      "10.216.11",
      async (s, started) => {
        const { plugins: [conf] } = s.conflist("1.0.0") as { plugins: Json[] };
        const { cniVersion: _, ...noVersion } = { ...conf, name: s.net } as Json;
        await ctrd.setCriNetwork(noVersion);
        const { add, link } = await podLifeCycle(s, started, s.leases.dir);
        assertEquals(add.stdin.cniVersion ?? "", "", "libcni passes the missing version as empty");
        assertEquals(link.addresses, [`${s.wire.prefix}.10/24`]);
      },
    );

    // The README's example networks as a user applies them, on a master standing in for ib0. The master's
    // MTU is an IPoIB parent's (4092) so that the second example's "mtu": 2044 fits under it. whereabouts
    // is not in Debian: its range goes to host-local instead. host-local's default lease store,
    // /var/lib/cni/networks, is containerd's private one.
    const examples = await readmeNetworks();
    assertEquals(examples.length, 2, "the README's two example networks");
    for (const [n, example] of examples.entries()) {
      const ipam = example.ipam as Json;
      const subnet = String(ipam.subnet ?? ipam.range);
      const prefix = subnet.split(".").slice(0, 3).join(".");
      await criScenario(
        `README example network ${example.name}: the pod starts with its address`,
        prefix,
        async (s, started) => {
          const network: Json = {
            ...example,
            master: s.wire.master.name,
            logFile: s.logFile,
            ...(ipam.type === "whereabouts"
              ? { ipam: { type: "host-local", subnet: ipam.range, rangeStart: `${prefix}.10` } }
              : {}),
          };
          await ctrd.setCriNetwork(network);
          const leaseDir = `${ctrd.cniCacheDir}/networks/${example.name}`;
          const { link } = await podLifeCycle(s, started, leaseDir);
          assertEquals(link.addresses, [`${prefix}.10/24`], `example ${n}`);
          assertEquals(link.mtu, example.mtu ?? 4092);
        },
        4092,
      );
    }

    /**
     * One `ctr run --rm --cni` scenario: the container prints `ip addr show eth0` and the link's flags (busybox
     * ip names no IFF_PROMISC), then exits.
     */
    const ctrScenario = (
      name: string,
      prefix: string,
      body: (s: Stage, run: () => Promise<string>) => Promise<void>,
    ) =>
      t.step(`ctr run --cni: ${name}`, () =>
        Stage.run(tmp, plugins, prefix, async (s) => {
          const id = `e2e-${suffix(8)}`;
          try {
            await body(s, async () => {
              const r = await ctrd.ctr(
                "run",
                "--rm",
                "--cni",
                "--snapshotter",
                "native",
                POD_IMAGE,
                id,
                "sh",
                "-c",
                "ip addr show eth0 && cat /sys/class/net/eth0/flags",
              );
              if (r.code !== 0) throw new Error(`ctr run failed (${r.code}): ${r.stderr}${r.stdout}`);
              return r.stdout;
            });
          } finally {
            // A failed run leaves its container (and maybe its task) behind.
            await ctrd.ctr("task", "kill", "--signal", "SIGKILL", id);
            await ctrd.ctr("task", "delete", "--force", id);
            await ctrd.ctr("container", "delete", id);
          }
        }));

    /** ctr's teardown: every plugin's DEL comes after the task exited, with CNI_NETNS="". */
    const assertCtrTeardown = async (s: Stage) => {
      for (const i of s.plugins.invocations().filter((i) => i.command === "DEL")) {
        assertEquals(i.env.CNI_NETNS, "", `${i.plugin} DEL`);
        assertEquals(i.code, 0, `${i.plugin} DEL: ${i.stdoutText}`);
      }
      assertMatch(s.plugins.one("ipoib", "ADD").env.CNI_NETNS ?? "", /^\/proc\/\d+\/ns\/net$/);
      assertEquals((await s.wire.master.children()).map((l) => l.ifname), [], "child link left on the host");
      assertEquals(s.leases.leases(), [], "host-local lease left");
      assertEquals(ctrd.cachedResults().filter((f) => f.includes(s.net)), [], "libcni cache entry left");
    };

    await ctrScenario('a .conf without cniVersion (libcni sends "")', "10.216.30", async (s, run) => {
      const { plugins: [conf] } = s.conflist("1.0.0") as { plugins: Json[] };
      const { cniVersion: _, ...noVersion } = { ...conf, name: s.net } as Json;
      await ctrd.setCtrNetwork(noVersion);
      const out = await run();
      assertMatch(out, new RegExp(`inet ${s.wire.prefix.replaceAll(".", "\\.")}\\.10/24`));
      const add = s.plugins.one("ipoib", "ADD");
      assertEquals(add.code, 0, add.stdoutText);
      assertEquals(add.stdin.cniVersion ?? "", "");
      assertEquals(s.plugins.verbs("ipoib"), ["ADD", "DEL"]);
      await assertCtrTeardown(s);
    });

    await ctrScenario("a 1.0.0 conflist chained with tuning", "10.216.31", async (s, run) => {
      await ctrd.setCtrNetwork(s.conflist("1.0.0", { tuning: s.tuning("eth0", { mtu: 1400 }) }));
      const out = await run();
      assertMatch(out, new RegExp(`inet ${s.wire.prefix.replaceAll(".", "\\.")}\\.10/24`));
      assertMatch(out, / mtu 1400 /, "tuning's mtu applied after our ADD");
      const flags = out.trim().split("\n").pop()!;
      assert((Number.parseInt(flags, 16) & 0x100) !== 0, `IFF_PROMISC not set: ${flags}`);
      assertEquals(s.chainOrder(), ["ipoib ADD", "tuning ADD", "tuning DEL", "ipoib DEL"]);
      assertEquals(s.plugins.one("tuning", "ADD").stdin.prevResult, s.plugins.one("ipoib", "ADD").stdout);
      // No check of tuning's state file: given CNI_NETNS="", Go tuning's DEL returns before removing it.
      await assertCtrTeardown(s);
    });
  } finally {
    await ctrd.stop();
  }
  assertEquals(await processesNaming(ctrd.dir), [], "containerd, shim or container process left");
});
