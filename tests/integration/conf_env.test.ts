/**
 * What real callers send, through the stand-in plugin process against the real kernel and Debian's Go
 * plugins: `"cniVersion": ""` and no cniVersion (libcni's .conf), `"mtu": 0`, CNI_ARGS meant for the IPAM
 * plugin, no CNI_PATH where nothing is executed, DEL with a config ADD would refuse, CNI_IFNAME templates,
 * and an `ipam.type` naming the plugin itself. Go macvlan runs side by side where behaviour is compared.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { runPlugin } from "../../support/run.ts";
import {
  cniEnv,
  GO_CNI,
  hostLocal,
  type Json,
  STANDIN,
  type StandinFixture,
  withStandinFixture,
} from "../../support/fixture.ts";
import { addresses } from "../../support/net.ts";

type Fixture = StandinFixture;

/** A fresh master of MTU `mtu`, pod namespace, host-local data dir and scratch dir (support/fixture.ts). */
function withFixture(body: (f: Fixture) => Promise<void>, mtu = 1500): Promise<void> {
  return withStandinFixture({ mtu, prefix: "tcfg", scratch: "ipoib-confenv-" }, body);
}

function conf(f: Fixture, ipam: Json, extra: Json = {}): Json {
  return { cniVersion: "1.0.0", name: "cfgnet", type: "ipoib", master: f.master.name, ipam, ...extra };
}

/** Runs the stand-in; `stdin` is sent as given when a string, else as JSON. */
function run(f: Fixture, verb: string, c: Json | string, extra: Record<string, string> = {}) {
  return runPlugin(STANDIN, cniEnv(f, verb, extra), typeof c === "string" ? c : JSON.stringify(c));
}

async function ok(f: Fixture, verb: string, c: Json | string, extra: Record<string, string> = {}) {
  const r = await run(f, verb, c, extra);
  assertEquals(r.code, 0, `${verb} failed: ${r.stdout} ${r.stderr}`);
  return r;
}

function assertError(r: { code: number; json: unknown; stdout: string }, code: number, msg?: RegExp): Json {
  assertEquals(r.code, 1, r.stdout);
  const e = r.json as Json;
  assertEquals(e.code, code, r.stdout);
  if (msg) assertMatch(e.msg as string, msg);
  return e;
}

/** Go macvlan with the same config (type macvlan), for a side-by-side comparison; always deleted after. */
async function goMacvlan(f: Fixture, c: Json, verb: string, extra: Record<string, string> = {}) {
  return await runPlugin(
    [`${GO_CNI}/macvlan`],
    cniEnv(f, verb, { CNI_IFNAME: "go1", CNI_CONTAINERID: `go-${f.pod.name}`, ...extra }),
    JSON.stringify({ ...c, type: "macvlan" }),
  );
}

/** A CNI_PATH directory whose `name` records each call's verb and exact stdin, then runs `delegate`. */
async function recordingPlugin(
  f: Fixture,
  name: string,
  delegate?: string,
): Promise<{ dir: string; calls: () => string[] }> {
  const dir = `${f.scratch}/bin-${name}`;
  await Deno.mkdir(dir);
  const record = `${f.scratch}/${name}.calls`;
  await Deno.writeTextFile(
    `${dir}/${name}`,
    `#!/bin/sh
cat > ${f.scratch}/${name}.stdin.$$
printf '%s %s\\n' "$CNI_COMMAND" "$(base64 -w0 < ${f.scratch}/${name}.stdin.$$)" >> ${record}
${delegate ? `exec ${delegate} < ${f.scratch}/${name}.stdin.$$` : "exit 0"}
`,
    { mode: 0o755 },
  );
  const calls = () => {
    try {
      return Deno.readTextFileSync(record).split("\n").filter((l) => l !== "");
    } catch {
      return [];
    }
  };
  return { dir, calls };
}

for (
  const [label, version] of [
    ['"cniVersion": ""', ""],
    ['"cniVersion": null', null],
    ["no cniVersion", undefined],
  ] as const
) {
  Deno.test(`${label} is 0.1.0 on every verb, like Go macvlan; host-local gets the bytes as sent`, async () => {
    await withFixture(async (f) => {
      const recorder = await recordingPlugin(f, "hl-rec", `${GO_CNI}/host-local`);
      const c = conf(f, { ...hostLocal(f, "10.231.0.0/24"), type: "hl-rec" }, { cniVersion: version });
      if (version === undefined) delete c.cniVersion;
      const text = JSON.stringify(c);
      const path = { CNI_PATH: `${recorder.dir}:${GO_CNI}` };

      const add = await ok(f, "ADD", text, path);
      const result = add.json as Json;
      assertEquals(Object.keys(result).sort(), ["cniVersion", "dns", "ip4"]);
      assertEquals(result.cniVersion, "0.1.0");
      const addrs = await addresses(f.pod.name, "ib1");
      assertEquals(addrs.map((a) => `${a.local}/${a.prefixlen}`), [(result.ip4 as Json).ip]);
      // The IPAM plugin received the runtime's bytes unchanged, and answered in 0.1.0 too.
      const [verb, sent] = recorder.calls()[0]!.split(" ");
      assertEquals(verb, "ADD");
      assertEquals(new TextDecoder().decode(Uint8Array.from(atob(sent!), (ch) => ch.charCodeAt(0))), text);

      // Go macvlan + host-local on the same config answers in the same shape.
      const go = await goMacvlan(f, { ...c, ipam: hostLocal(f, "10.231.0.0/24") }, "ADD");
      assertEquals(go.code, 0, go.stdout);
      assertEquals(Object.keys(go.json as Json).sort(), ["cniVersion", "dns", "ip4"]);
      assertEquals((go.json as Json).cniVersion, "0.1.0");
      assertEquals((await goMacvlan(f, { ...c, ipam: hostLocal(f, "10.231.0.0/24") }, "DEL")).code, 0);

      // CHECK, GC and STATUS are refused as for any 0.1.0 config (Go: "config version does not allow CHECK").
      for (const v of ["CHECK", "GC", "STATUS"]) {
        assertError(await run(f, v, { ...c, prevResult: result }, path), 1, /requires cniVersion/);
      }
      const ver = await ok(f, "VERSION", text);
      assertEquals((ver.json as Json).cniVersion, "0.1.0");
      // Errors are reported in 0.1.0 as well.
      const bad = await run(f, "ADD", JSON.stringify({ ...c, mtu: 1 }), path);
      assertEquals((assertError(bad, 7)).cniVersion, "0.1.0");

      await ok(f, "DEL", text, path);
      await ok(f, "DEL", text, path);
      assertEquals(recorder.calls().map((l) => l.split(" ")[0]), ["ADD", "DEL", "DEL"]);
    });
  });
}

Deno.test('"mtu": 0 means the master\'s MTU, as in Go macvlan; CHECK accepts it', async () => {
  await withFixture(async (f) => {
    const c = conf(f, hostLocal(f, "10.231.1.0/24"), { mtu: 0 });
    const result = (await ok(f, "ADD", c)).json as Json;
    const ours = (await f.pod.links()).find((l) => l.ifname === "ib1")!;
    assertEquals(ours.mtu, 1400);
    await ok(f, "CHECK", { ...c, prevResult: result });
    const go = await goMacvlan(f, c, "ADD");
    assertEquals(go.code, 0, go.stdout);
    assertEquals((await f.pod.links()).find((l) => l.ifname === "go1")!.mtu, 1400);
    assertEquals((await goMacvlan(f, c, "DEL")).code, 0);
    await ok(f, "DEL", c);
  }, 1400);
});

Deno.test("CNI_ARGS keys for the IPAM plugin are never refused: static's IP= on ADD, CHECK and DEL", async () => {
  await withFixture(async (f) => {
    const c = conf(f, { type: "static" });
    const args = { CNI_ARGS: "IP=10.231.2.55/24" };
    const result = (await ok(f, "ADD", c, args)).json as Json;
    assertEquals((result.ips as Json[]).map((ip) => ip.address), ["10.231.2.55/24"]);
    assertEquals((await addresses(f.pod.name, "ib1")).map((a) => `${a.local}/${a.prefixlen}`), [
      "10.231.2.55/24",
    ]);
    await ok(f, "CHECK", { ...c, prevResult: result }, args);
    await ok(f, "DEL", c, args);
    // Kubernetes' keys with IgnoreUnknown and an IPAM key: what CRI sends plus one for static.
    const k8s = { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.231.2.56/24" };
    assertEquals(((await ok(f, "ADD", c, k8s)).json as Json).ips, [{
      address: "10.231.2.56/24",
      interface: 0,
    }]);
    await ok(f, "DEL", c, k8s);
  });
});

Deno.test("CNI_ARGS the plugin cannot parse are the IPAM plugin's to judge, as with Go macvlan", async () => {
  await withFixture(async (f) => {
    // No IPAM plugin runs: nothing judges the arguments, ADD and DEL succeed.
    for (const a of ["novalue", "a=b=c", ";;", "FOO=bar"]) {
      await ok(f, "ADD", conf(f, {}), { CNI_ARGS: a });
      await ok(f, "DEL", conf(f, {}), { CNI_ARGS: a });
    }
    // static refuses a malformed pair itself; the failure is its own, passed through, and nothing is left.
    const r = await run(f, "ADD", conf(f, { type: "static" }), { CNI_ARGS: "IP=10.231.3.5/24;novalue" });
    assertError(r, 999, /ARGS: invalid pair "novalue"/);
    const go = await goMacvlan(f, conf(f, { type: "static" }), "ADD", {
      CNI_ARGS: "IP=10.231.3.5/24;novalue",
    });
    assertEquals((go.json as Json).msg, 'ARGS: invalid pair "novalue"');
    await ok(f, "DEL", conf(f, { type: "static" }), { CNI_ARGS: "IP=10.231.3.5/24;novalue" });
  });
});

Deno.test("CNI_PATH is needed only to execute an IPAM plugin", async () => {
  await withFixture(async (f) => {
    const l2 = conf(f, {});
    const noPath = { CNI_PATH: "" };
    const result = (await ok(f, "ADD", l2, noPath)).json as Json;
    await ok(f, "CHECK", { ...l2, prevResult: result }, noPath);
    await ok(f, "DEL", l2, noPath);
    const l2v11 = { ...l2, cniVersion: "1.1.0" };
    await ok(f, "STATUS", l2v11, noPath);
    await ok(f, "GC", l2v11, noPath);

    const withIpam = conf(f, hostLocal(f, "10.231.4.0/24"));
    for (const verb of ["ADD", "DEL"]) {
      assertError(await run(f, verb, withIpam, noPath), 4, new RegExp(`^CNI_PATH is required for ${verb}$`));
    }
    for (const verb of ["GC", "STATUS"]) {
      assertError(
        await run(f, verb, { ...withIpam, cniVersion: "1.1.0" }, noPath),
        4,
        /^CNI_PATH is required/,
      );
    }
  });
});

Deno.test("DEL goes on without any field value ADD refuses, reports each on stderr, removes link and lease", async () => {
  await withFixture(async (f) => {
    const c = conf(f, hostLocal(f, "10.231.5.0/24"));
    const edits: Json[] = [
      { mtu: 70000 },
      { logLevel: "warn" },
      { logFile: "relative.log" },
      { pkey: 0x8000 },
      { ipamTimeout: 0 },
      { dns: "8.8.8.8" },
      { master: "no such/master" },
      { mtu: 70000, logLevel: "warn", logFile: "x.log", pkey: "zz" },
    ];
    for (const edit of edits) {
      await ok(f, "ADD", c);
      const refused = await run(f, "ADD", { ...c, ...edit }, { CNI_CONTAINERID: "other" });
      assertError(refused, 7);
      const del = await ok(f, "DEL", { ...c, ...edit });
      assertEquals(del.stdout, "");
      for (const field of Object.keys(edit)) {
        assert(
          del.stderr.includes(`ipoib: DEL goes on without: invalid network configuration: field "${field}"`),
          del.stderr,
        );
      }
      assertEquals(await f.pod.links(), []);
      assertEquals(f.leases.leases(), []);
    }
  });
});

Deno.test("DEL with an unreadable field and a usable logFile reports it in the log, not on stderr", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/del.log`;
    const c = conf(f, hostLocal(f, "10.231.6.0/24"), { logFile });
    await ok(f, "ADD", c);
    const del = await ok(f, "DEL", { ...c, mtu: 70000 });
    assertEquals(del.stderr, "");
    assertMatch(
      await Deno.readTextFile(logFile),
      / ERROR .* DEL goes on without: invalid network configuration: field "mtu" 70000 /,
    );
  });
});

Deno.test("DEL of a config that is not JSON fails with code 6, as Go macvlan does", async () => {
  await withFixture(async (f) => {
    assertError(await run(f, "DEL", "not json"), 6);
    const go = await goMacvlan(f, conf(f, {}), "DEL");
    assertEquals(go.code, 0);
    const goBad = await runPlugin([`${GO_CNI}/macvlan`], cniEnv(f, "DEL"), "not json");
    assertEquals((goBad.json as Json).code, 6);
  });
});

Deno.test("CNI_IFNAME the kernel would expand (net%d) is code 4 on ADD and CHECK; DEL releases the lease", async () => {
  await withFixture(async (f) => {
    const c = conf(f, hostLocal(f, "10.231.7.0/24"));
    for (const name of ["net%d", "ib%", "%d"]) {
      assertError(await run(f, "ADD", c, { CNI_IFNAME: name }), 4, /^CNI_IFNAME ".*" contains '%'/);
      assertEquals(await f.pod.links(), [], "the kernel picked a name for a link");
      assertError(await run(f, "CHECK", { ...c, prevResult: {} }, { CNI_IFNAME: name }), 4);
    }
    // A lease taken under a template name (as older versions of this plugin did, and Go's host-local
    // accepts) is released by DEL.
    for (const name of ["net%d", "%"]) {
      const lease = await runPlugin(
        [`${GO_CNI}/host-local`],
        cniEnv(f, "ADD", { CNI_IFNAME: name }),
        JSON.stringify(c),
      );
      assertEquals(lease.code, 0, lease.stdout);
      assertEquals(f.leases.leases().length, 1);
      await ok(f, "DEL", c, { CNI_IFNAME: name });
      assertEquals(f.leases.leases(), [], name);
    }
    // A name the kernel refuses was refused by ADD and by every Go IPAM plugin (code 4 on DEL too): DEL
    // has nothing to release and runs nothing.
    const recorder = await recordingPlugin(f, "hl-rec", `${GO_CNI}/host-local`);
    for (const name of ["x".repeat(20), "a/b", "a b", "."]) {
      const r = await runPlugin(
        [`${GO_CNI}/host-local`],
        cniEnv(f, "DEL", { CNI_IFNAME: name }),
        JSON.stringify(c),
      );
      assertEquals((r.json as Json).code, 4, name);
      await ok(f, "DEL", { ...c, ipam: { ...c.ipam as Json, type: "hl-rec" } }, {
        CNI_IFNAME: name,
        CNI_PATH: recorder.dir,
      });
    }
    assertEquals(recorder.calls(), []);
  });
});

Deno.test("ipam.type naming this plugin is code 7 before anything runs; DEL runs nothing and succeeds", async () => {
  await withFixture(async (f) => {
    // By the config's own type, and by the running executable's name (the stand-in runs as `deno`).
    const self = Deno.execPath().split("/").at(-1)!;
    for (const name of ["ipoib", self]) {
      const recorder = await recordingPlugin(f, name);
      const c = conf(f, { type: name });
      const env = { CNI_PATH: recorder.dir };
      assertError(await run(f, "ADD", c, env), 7, /field "ipam\.type" ".*" names this plugin itself/);
      assertError(await run(f, "STATUS", { ...c, cniVersion: "1.1.0" }, env), 7);
      assertEquals(await f.pod.links(), []);
      await ok(f, "ADD", conf(f, {}), env);
      const del = await ok(f, "DEL", c, env);
      assert(del.stderr.includes("names this plugin itself"), del.stderr);
      assertEquals(recorder.calls(), [], `${name} was executed`);
    }
  });
});

/** Global (non link-local) addresses of `ifname` in the pod, as "address/prefix". */
async function globalAddresses(f: Fixture, ifname: string): Promise<string[]> {
  return (await addresses(f.pod.name, ifname)).map((a) => `${a.local}/${a.prefixlen}`);
}

Deno.test("no IPAM in any of its forms is layer 2 only on every verb, as Go macvlan; logged at info", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/noipam.log`;
    const forms: [string, Json | undefined][] = [
      ["ipam absent", undefined],
      ['"ipam": null', { ipam: null }],
      ['"ipam": {"type": ""}', { ipam: { type: "" } }],
      ['"ipam": {"type": null}', { ipam: { type: null } }],
      ["ipam without type", { ipam: { subnet: "10.231.8.0/24", dataDir: f.leases.dir } }],
      ['"ipam": {}', { ipam: {} }],
    ];
    for (const [label, ipam] of forms) {
      const c: Json = { ...conf(f, {}, { logFile, logLevel: "info" }), ...ipam };
      if (ipam === undefined) delete c.ipam;
      // An empty CNI_PATH as well: nothing is executed.
      const noPath = { CNI_PATH: "" };
      const result = (await ok(f, "ADD", c, noPath)).json as Json;
      assertEquals(result.ips, undefined, label);
      assertEquals((result.interfaces as Json[]).map((i) => i.name), ["ib1"], label);
      assertEquals(await globalAddresses(f, "ib1"), [], label);
      await ok(f, "CHECK", { ...c, prevResult: result }, noPath);
      await ok(f, "STATUS", { ...c, cniVersion: "1.1.0" }, noPath);
      await ok(f, "GC", { ...c, cniVersion: "1.1.0" }, noPath);

      const go = await goMacvlan(f, c, "ADD");
      assertEquals(go.code, 0, `Go macvlan, ${label}: ${go.stdout}`);
      assertEquals((go.json as Json).ips, undefined, label);
      assertEquals(await globalAddresses(f, "go1"), [], label);
      assertEquals((await goMacvlan(f, c, "DEL")).code, 0, label);

      const del = await ok(f, "DEL", c, noPath);
      assertEquals([del.stdout, del.stderr], ["", ""], label);
      assertEquals(await f.pod.links(), [], label);
    }
    const log = await Deno.readTextFile(logFile);
    for (const verb of ["ADD", "CHECK", "STATUS", "GC", "DEL"]) {
      assertMatch(
        log,
        new RegExp(` INFO \\[\\d+\\] ${verb} .*no IPAM plugin runs: ipam\\.type is not set`),
        verb,
      );
    }
    // A path or this plugin itself is still refused.
    assertError(await run(f, "ADD", conf(f, { type: "/usr/lib/cni/host-local" })), 7, /"ipam\.type"/);
    assertError(await run(f, "ADD", conf(f, { type: "ipoib" })), 7, /names this plugin itself/);
  });
});

Deno.test("null in any optional field is not set, on ADD, CHECK and DEL, as Go macvlan reads it", async () => {
  await withFixture(async (f) => {
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
    const base = conf(f, hostLocal(f, "10.231.9.0/24"));
    for (
      const edit of [...optional.map((field) => ({ [field]: null })), {
        ...Object.fromEntries(optional.map((o) => [o, null])),
      }]
    ) {
      const c = { ...base, ...edit };
      const label = Object.keys(edit).join(",");
      const result = (await ok(f, "ADD", c)).json as Json;
      assertEquals(await globalAddresses(f, "ib1"), (result.ips as Json[]).map((ip) => ip.address), label);
      await ok(f, "CHECK", { ...c, prevResult: result });
      const go = await goMacvlan(f, c, "ADD");
      assertEquals(go.code, 0, `Go macvlan, ${label}: ${go.stdout}`);
      assertEquals((await goMacvlan(f, c, "DEL")).code, 0, label);
      const del = await ok(f, "DEL", c);
      assertEquals(del.stderr, "", `${label}: DEL went on without a field`);
    }
  });
});

Deno.test("member names in another case (Master, IPAM/Type, MTU, CNIVersion) are read as Go macvlan reads them", async () => {
  await withFixture(async (f) => {
    // Go's encoding/json matches member names without regard to case: each of these attaches there.
    const c: Json = {
      CNIVersion: "1.0.0",
      name: "cfgnet",
      type: "ipoib",
      Master: f.master.name,
      MTU: 1400,
      IPAM: { Type: "host-local", dataDir: f.leases.dir, ranges: [[{ subnet: "10.231.9.0/24" }]] },
    };
    const go = await goMacvlan(f, c, "ADD");
    assertEquals(go.code, 0, go.stdout);
    const goResult = go.json as Json;
    const result = (await ok(f, "ADD", c)).json as Json;
    assertEquals(result.cniVersion, goResult.cniVersion);
    assertEquals((result.ips as Json[]).length, 1, "IPAM ran");
    const links = await f.pod.links();
    assertEquals(links.find((l) => l.ifname === "ib1")!.mtu, 1400);
    assertEquals(links.find((l) => l.ifname === "go1")!.mtu, 1400);
    await ok(f, "CHECK", { ...c, prevResult: result });
    assertEquals((await goMacvlan(f, c, "DEL")).code, 0);
    await ok(f, "DEL", c);
  }, 1500);
});
