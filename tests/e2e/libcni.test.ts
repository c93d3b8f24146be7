/**
 * libcni (Debian's golang-github-appc-cni-dev, the library container runtimes embed) drives ipoib (the
 * stand-in entry) through a small client of ours, tests/e2e/cnictl: VERSION checks, ADD, CHECK and DEL
 * over conflists, chaining (a plugin before ours whose result we must pass on, tuning after ours), and
 * libcni's result cache feeding prevResult to CHECK and DEL. libcni 1.1 has no GC or STATUS (they arrived
 * with CNI 1.1.0 in libcni 1.2): those are invoked directly, as a CNI 1.1.0 runtime would.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { exists } from "../../support/fs.ts";
import { addresses, routes, sh, suffix, TestNetns } from "../../support/net.ts";
import { type ConflistOptions, filesUnder, type Json, PluginDir, Stage, TempDir } from "./fixtures.ts";
import { type Attachment, Cnictl } from "./libcni.ts";

/** The conflist file and pod namespaces of one libcni scenario. */
interface Scenario {
  /** Writes the stage's conflist of `version` to a file and returns its path. */
  writeList(version: string, o?: ConflistOptions): Promise<string>;
  /** A fresh pod namespace and the attachment libcni makes in it. */
  pod(): Promise<{ ns: TestNetns; at: Attachment }>;
}

/** Every verb's recorded ipoib invocation succeeded and came with the attachment's environment. */
function assertEnv(s: Stage, at: Attachment): void {
  for (const i of s.plugins.invocations("ipoib").filter((i) => i.command !== "VERSION")) {
    assertEquals(i.code, 0, `${i.command}: ${i.stdoutText}`);
    assertEquals(i.env.CNI_CONTAINERID, at.id);
    assertEquals(i.env.CNI_NETNS, at.netns);
    assertEquals(i.env.CNI_IFNAME, at.ifname);
    assertEquals(i.env.CNI_PATH, s.plugins.path.join(":"));
  }
}

/** After DEL: no link in the pod or on the host, no lease, no libcni cache entry. */
async function assertNothingLeft(cni: Cnictl, s: Stage, pod: TestNetns, at: Attachment): Promise<void> {
  assertEquals((await pod.links()).map((l) => l.ifname), [], "link left in the pod namespace");
  assertEquals((await s.wire.master.children()).map((l) => l.ifname), [], "child link left on the host");
  assertEquals(s.leases.leases(), [], "host-local lease left");
  assert(!exists(cni.cacheFile(s.net, at)), "libcni cache entry left");
}

/** What a directly invoked plugin printed and returned. */
interface Direct {
  code: number;
  stdout: string;
  json: Json | undefined;
}

/** Invokes a plugin executable the way the CNI spec says a runtime does: stdin config, CNI_* environment. */
async function invoke(executable: string, env: Record<string, string>, conf: Json): Promise<Direct> {
  const child = new Deno.Command(executable, { env, stdin: "piped", stdout: "piped", stderr: "inherit" })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(conf)));
  await w.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  let json: Json | undefined;
  try {
    json = JSON.parse(stdout);
  } catch { /* empty or not JSON */ }
  return { code: out.code, stdout, json };
}

/** `busybox ping` from inside a namespace; returns its output. */
async function pingFrom(pod: TestNetns, address: string): Promise<string> {
  return await sh("ip", "netns", "exec", pod.name, "busybox", "ping", "-c", "1", "-W", "5", address);
}

Deno.test("libcni drives ipoib through ADD, CHECK and DEL with its cached results", async (t) => {
  await using tmp = await TempDir.create("ipoib-e2e-cni-");
  const plugins = await PluginDir.create(tmp);
  const cni = await Cnictl.build(await tmp.sub("cnictl"), plugins);
  console.log(`libcni ${await Cnictl.libcniVersion()}`);

  /** One scenario on a fresh stage; every pod it made is deleted through libcni and removed. */
  const scenario = (name: string, prefix: string, body: (x: Scenario, s: Stage) => Promise<void>) =>
    t.step(name, () =>
      Stage.run(tmp, plugins, prefix, async (stage) => {
        const pods: { ns: TestNetns; at: Attachment }[] = [];
        const listFile = `${tmp.path}/${stage.net}.conflist`;
        const x: Scenario = {
          writeList: async (version, o) => {
            await Deno.writeTextFile(listFile, JSON.stringify(stage.conflist(version, o), null, 2));
            return listFile;
          },
          pod: async () => {
            const ns = await TestNetns.create("e2epod");
            const pod = { ns, at: { id: `e2e-${suffix(10)}`, netns: ns.path, ifname: "net1" } };
            pods.push(pod);
            return pod;
          },
        };
        try {
          await body(x, stage);
        } finally {
          for (const { ns, at } of pods) {
            // A scenario that failed part-way: release what libcni still holds, then drop the namespace.
            if (exists(cni.cacheFile(stage.net, at))) await cni.run("del", listFile, at);
            await ns[Symbol.asyncDispose]();
          }
        }
      }));

  for (const [version, prefix] of [["0.4.0", "10.214.4"], ["1.0.0", "10.214.10"]] as const) {
    await scenario(
      `cniVersion ${version}: VERSION check, ADD, CHECK and DEL with libcni's cached result as prevResult`,
      prefix,
      async (x, s) => {
        const list = await x.writeList(version);
        const { ns: pod, at } = await x.pod();
        assertEquals(await cni.ok("validate", list, at), []);
        assertEquals(s.plugins.one("ipoib", "VERSION").stdout?.supportedVersions instanceof Array, true);

        const result = await cni.ok("add", list, at) as Json;
        assertEquals(result.cniVersion, version);
        assertEquals((result.ips as Json[]).map((ip) => ip.address), [`${prefix}.10/24`]);
        assertEquals((await addresses(pod.name, "net1")).map((a) => `${a.local}/${a.prefixlen}`), [
          `${prefix}.10/24`,
        ]);
        const r4 = await routes(pod.name, 4);
        assert(r4.some((r) => r.dst === "default" && r.gateway === s.wire.gateway), JSON.stringify(r4));
        assertMatch(await pingFrom(pod, s.wire.gateway), / 1 packets received/);
        assertEquals(await cni.ok("cached", list, at), result, "libcni cached our result");

        await cni.ok("check", list, at);
        const add = s.plugins.one("ipoib", "ADD");
        const check = s.plugins.one("ipoib", "CHECK");
        assertEquals(add.stdin.prevResult, undefined);
        assertEquals(check.stdin.cniVersion, version);
        assertEquals(check.stdin.prevResult, add.stdout, "CHECK carries the cached ADD result");
        assertEquals(check.code, 0);

        await cni.ok("del", list, at);
        const del = s.plugins.one("ipoib", "DEL");
        assertEquals(del.stdin.prevResult, add.stdout, "DEL carries the cached ADD result");
        assertEquals(s.plugins.verbs("ipoib"), ["ADD", "CHECK", "DEL"]);
        assertEquals(s.plugins.verbs("host-local"), ["ADD", "CHECK", "DEL"]);
        for (const verb of ["ADD", "CHECK", "DEL"]) {
          assertEquals(s.plugins.one("host-local", verb).stdinText, s.plugins.one("ipoib", verb).stdinText);
        }
        assertEnv(s, at);
        await assertNothingLeft(cni, s, pod, at);
        const log = await Deno.readTextFile(s.logFile);
        for (const verb of ["ADD", "CHECK", "DEL"]) {
          assertMatch(log, new RegExp(`INFO \\[\\d+\\] ${verb} container=${at.id} .* ${verb}: done`));
        }
      },
    );
  }

  await scenario(
    "cniVersion 0.3.1: libcni refuses CHECK itself and sends DEL without prevResult",
    "10.214.3",
    async (x, s) => {
      const list = await x.writeList("0.3.1");
      const { ns: pod, at } = await x.pod();
      const result = await cni.ok("add", list, at) as Json;
      assertEquals(result.cniVersion, "0.3.1");
      const check = await cni.run("check", list, at);
      assertEquals(check.code, 1);
      assertMatch(check.stderr, /does not support the CHECK command/);
      await cni.ok("del", list, at);
      assertEquals(s.plugins.verbs("ipoib"), ["ADD", "DEL"]);
      assertEquals(s.plugins.one("ipoib", "DEL").stdin.prevResult, undefined);
      await assertNothingLeft(cni, s, pod, at);
    },
  );

  await scenario(
    "a chain where tuning follows ipoib: tuning gets our result; CHECK and DEL run both with the cached final result",
    "10.214.20",
    async (x, s) => {
      const tuning = s.tuning("net1");
      const list = await x.writeList("1.0.0", { tuning });
      const { ns: pod, at } = await x.pod();
      const result = await cni.ok("add", list, at) as Json;
      const link = (await pod.links()).find((l) => l.ifname === "net1");
      assert(link?.flags.includes("PROMISC"), `tuning's promisc not applied: ${JSON.stringify(link)}`);
      const arpIgnore = await sh(
        "ip",
        "netns",
        "exec",
        pod.name,
        "cat",
        "/proc/sys/net/ipv4/conf/net1/arp_ignore",
      );
      assertEquals(arpIgnore.trim(), "1", "tuning's sysctl applied");

      const ourAdd = s.plugins.one("ipoib", "ADD");
      const tuningAdd = s.plugins.one("tuning", "ADD");
      assertEquals(tuningAdd.stdin.prevResult, ourAdd.stdout, "tuning receives our ADD result");
      assertEquals(result, tuningAdd.stdout, "the list's result is the last plugin's");

      await cni.ok("check", list, at);
      assertEquals(s.plugins.one("ipoib", "CHECK").stdin.prevResult, result);
      assertEquals(s.plugins.one("tuning", "CHECK").stdin.prevResult, result);
      await cni.ok("del", list, at);
      assertEquals(s.plugins.one("tuning", "DEL").stdin.prevResult, result);
      assertEquals(s.plugins.one("ipoib", "DEL").stdin.prevResult, result);

      const order = s.plugins.invocations().filter((i) =>
        i.plugin !== "host-local" && i.command !== "VERSION"
      )
        .map((i) => `${i.plugin} ${i.command}`);
      assertEquals(order, [
        "ipoib ADD",
        "tuning ADD",
        "ipoib CHECK",
        "tuning CHECK",
        "tuning DEL",
        "ipoib DEL",
      ]);
      assertEquals(filesUnder(s.tuningDir), [], "tuning's DEL removed its state");
      assertEnv(s, at);
      await assertNothingLeft(cni, s, pod, at);
    },
  );

  await scenario(
    "a chain where tuning changes the MTU: ADD, CHECK and DEL pass through both plugins",
    "10.214.21",
    async (x, s) => {
      // Our config sets no mtu, so CHECK does not hold the link to the master's MTU: a later plugin in
      // the chain may change it, as tuning does here.
      const tuning = s.tuning("net1", { mtu: 1400 });
      const list = await x.writeList("1.0.0", { tuning });
      const { ns: pod, at } = await x.pod();
      await cni.ok("add", list, at);
      assertEquals((await pod.links()).find((l) => l.ifname === "net1")?.mtu, 1400);
      await cni.ok("check", list, at);
      await cni.ok("del", list, at);
      assertEquals(filesUnder(s.tuningDir), []);
      await assertNothingLeft(cni, s, pod, at);
    },
  );

  await scenario(
    "CHECK through libcni reports an address removed after ADD, and refuses when libcni lost its cache",
    "10.214.30",
    async (x, s) => {
      const list = await x.writeList("1.0.0");
      const { ns: pod, at } = await x.pod();
      await cni.ok("add", list, at);
      await sh("ip", "-n", pod.name, "addr", "del", "10.214.30.10/24", "dev", "net1");
      const drift = await cni.run("check", list, at);
      assertEquals(drift.code, 1);
      assertEquals((drift.json as Json).code, 102, drift.stderr);
      assertMatch((drift.json as Json).msg as string, /address 10\.214\.30\.10\/24 is missing/);

      // Without a cached result libcni sends CHECK without prevResult, which CHECK cannot work from.
      const cached = await Deno.readTextFile(cni.cacheFile(s.net, at));
      await Deno.remove(cni.cacheFile(s.net, at));
      const blind = await cni.run("check", list, at);
      assertEquals((blind.json as Json).code, 7, blind.stderr);
      assertMatch((blind.json as Json).msg as string, /prevResult/);
      await Deno.writeTextFile(cni.cacheFile(s.net, at), cached);

      await cni.ok("del", list, at);
      const checks = s.plugins.invocations("ipoib").filter((i) => i.command === "CHECK");
      assertEquals(checks.map((i) => i.stdin.prevResult === undefined), [false, true]);
      await assertNothingLeft(cni, s, pod, at);
    },
  );

  await scenario(
    "runtimeConfig from capability args and CNI_ARGS reach host-local unchanged; two pods on one master ping each other",
    "10.214.40",
    async (x, s) => {
      const list = await x.writeList("1.0.0", { capabilities: { ips: true } });
      const a = await x.pod();
      const b = await x.pod();
      await cni.ok("add", list, a.at, { capabilities: { ips: ["10.214.40.40/24"] } });
      await cni.ok("add", list, b.at, { args: "IgnoreUnknown=1;IP=10.214.40.33" });
      assertEquals((await addresses(a.ns.name, "net1")).map((x) => x.local), ["10.214.40.40"]);
      assertEquals((await addresses(b.ns.name, "net1")).map((x) => x.local), ["10.214.40.33"]);
      assertMatch(await pingFrom(a.ns, "10.214.40.33"), / 1 packets received/);

      const [addA, addB] = s.plugins.invocations("ipoib").filter((i) => i.command === "ADD");
      assertEquals(addA?.stdin.runtimeConfig, { ips: ["10.214.40.40/24"] });
      assertEquals(addB?.stdin.runtimeConfig, undefined, "no capability args, no runtimeConfig");
      assertEquals(addB?.env.CNI_ARGS, "IgnoreUnknown=1;IP=10.214.40.33");
      const [ipamA, ipamB] = s.plugins.invocations("host-local").filter((i) => i.command === "ADD");
      assertEquals(ipamA?.stdinText, addA?.stdinText);
      assertEquals(ipamB?.env.CNI_ARGS, addB?.env.CNI_ARGS);

      await cni.ok("del", list, a.at);
      await cni.ok("del", list, b.at);
      await assertNothingLeft(cni, s, a.ns, a.at);
      await assertNothingLeft(cni, s, b.ns, b.at);
    },
  );

  for (const [version, prefix] of [["0.4.0", "10.214.50"], ["1.0.0", "10.214.51"]] as const) {
    await scenario(
      `cniVersion ${version}: a chain where loopback precedes ipoib: its result passes through, ours is appended`,
      prefix,
      async (x, s) => {
        const list = await x.writeList(version, { before: [{ type: "loopback" }] });
        const { ns: pod, at } = await x.pod();
        const result = await cni.ok("add", list, at) as Json;

        const before = s.plugins.one("loopback", "ADD");
        const ours = s.plugins.one("ipoib", "ADD");
        assertEquals(before.code, 0, before.stdoutText);
        assertEquals(ours.code, 0, ours.stdoutText);
        // libcni re-encodes the result it passes on (under 0.4.0 it adds an empty IP "version"): what we must
        // keep is what we received.
        const prev = ours.stdin.prevResult as { interfaces: Json[]; ips: Json[] };
        assertEquals(
          prev.interfaces,
          (before.stdout as Json).interfaces,
          "libcni hands us loopback's result",
        );
        assertEquals(prev.interfaces.map((i) => i.name), ["lo"], "the Go loopback reports lo");
        assertEquals(result, ours.stdout, "the list's result is ours, the last plugin's");
        assertEquals(result.cniVersion, version);

        // CNI spec, ADD: a plugin in a chain outputs prevResult with its own additions.
        const interfaces = result.interfaces as Json[];
        assertEquals(interfaces.slice(0, prev.interfaces.length), prev.interfaces, "earlier interfaces kept");
        assertEquals(interfaces.length, prev.interfaces.length + 1, "ours appended");
        const mine = interfaces[prev.interfaces.length]!;
        assertEquals(mine.name, "net1");
        assertEquals(mine.sandbox, at.netns);
        const ips = result.ips as Json[];
        const ipKey = (ip: Json) => [ip.address, ip.interface, ip.gateway];
        assertEquals(ips.slice(0, prev.ips.length).map(ipKey), prev.ips.map(ipKey), "earlier IPs kept");
        assertEquals(
          ips.slice(prev.ips.length).map((ip) => [ip.address, ip.interface]),
          [[`${prefix}.10/24`, prev.interfaces.length]],
          "our IP names our interface's index",
        );
        assert(
          (result.routes as Json[] | undefined)?.some((r) => r.dst === "0.0.0.0/0"),
          `our route is in the result: ${JSON.stringify(result.routes)}`,
        );
        assertEquals((await addresses(pod.name, "net1")).map((a) => `${a.local}/${a.prefixlen}`), [
          `${prefix}.10/24`,
        ]);

        await cni.ok("check", list, at);
        assertEquals(s.plugins.one("ipoib", "CHECK").stdin.prevResult, result);
        await cni.ok("del", list, at);
        assertEquals(s.chainOrder(), [
          "loopback ADD",
          "ipoib ADD",
          "loopback CHECK",
          "ipoib CHECK",
          "ipoib DEL",
          "loopback DEL",
        ]);
        assertEnv(s, at);
        await assertNothingLeft(cni, s, pod, at);
      },
    );
  }

  await scenario(
    "a chain where tuning sets the MTU below our \"mtu\": CHECK allows the later plugin's change, as Go macvlan's does",
    "10.214.22",
    async (x, s) => {
      const tuning = s.tuning("net1", { mtu: 1300 });
      const list = await x.writeList("1.0.0", { tuning, extra: { mtu: 1400 } });
      // The same chain with Debian's Go macvlan in our place: the reference for what CHECK must allow.
      const goList = `${list}.go`;
      const goConf = JSON.parse(await Deno.readTextFile(list));
      goConf.plugins[0].type = "macvlan";
      await Deno.writeTextFile(goList, JSON.stringify(goConf));
      const go = await x.pod();
      await cni.ok("add", goList, go.at);
      assertEquals((await go.ns.links()).find((l) => l.ifname === "net1")?.mtu, 1300);
      await cni.ok("check", goList, go.at);
      await cni.ok("del", goList, go.at);

      const { ns: pod, at } = await x.pod();
      const ours = await cni.ok("add", list, at) as Json;
      assertEquals(
        (await pod.links()).find((l) => l.ifname === "net1")?.mtu,
        1300,
        "tuning's MTU applied last",
      );
      assertEquals(ours.cniVersion, "1.0.0");
      const check = await cni.run("check", list, at);
      assertEquals(check.code, 0, `CHECK: ${check.stderr}${check.stdout}`);
      await cni.ok("del", list, at);
      assertEquals(filesUnder(s.tuningDir), [], "tuning's DEL removed its state");
      await assertNothingLeft(cni, s, pod, at);
    },
  );

  await scenario(
    "GC and STATUS (CNI 1.1.0, not in libcni 1.1) invoked directly on a network libcni attached two pods to",
    "10.214.60",
    async (x, s) => {
      const list = await x.writeList("1.0.0");
      const a = await x.pod();
      const b = await x.pod();
      await cni.ok("add", list, a.at);
      await cni.ok("add", list, b.at);
      const { plugins: [ours] } = s.conflist("1.0.0") as { plugins: Json[] };
      // What libcni 1.2 sends: the list's name and version folded into each plugin's configuration.
      const conf = { ...ours, cniVersion: "1.1.0", name: s.net };
      const env = { CNI_PATH: s.plugins.path.join(":") };
      const ipoib = `${s.plugins.dir}/ipoib`;

      const gc = await invoke(ipoib, { ...env, CNI_COMMAND: "GC" }, {
        ...conf,
        "cni.dev/valid-attachments": [{ containerID: a.at.id, ifname: a.at.ifname }],
      });
      assertEquals([gc.code, gc.stdout], [0, ""], "GC succeeds with no output");
      // host-local 1.1.1 predates GC: asked for its versions, never for GC. Nothing of either pod is touched.
      assertEquals(s.plugins.verbs("host-local").filter((v) => v === "GC"), []);
      assertEquals((await a.ns.links()).map((l) => l.ifname), ["net1"]);
      assertEquals((await b.ns.links()).map((l) => l.ifname), ["net1"]);
      assertEquals(s.leases.leases().length, 2);

      const up = await invoke(ipoib, { ...env, CNI_COMMAND: "STATUS" }, conf);
      assertEquals([up.code, up.stdout], [0, ""], "STATUS: ready");
      await sh("ip", "link", "set", s.wire.master.name, "down");
      try {
        const down = await invoke(ipoib, { ...env, CNI_COMMAND: "STATUS" }, conf);
        assertEquals(down.code, 1);
        assertEquals(down.json?.code, 50, `STATUS with the master down: ${down.stdout}`);
      } finally {
        await sh("ip", "link", "set", s.wire.master.name, "up");
      }

      await cni.ok("del", list, a.at);
      await cni.ok("del", list, b.at);
      await assertNothingLeft(cni, s, a.ns, a.at);
      await assertNothingLeft(cni, s, b.ns, b.at);
    },
  );
});
