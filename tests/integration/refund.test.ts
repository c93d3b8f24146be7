/**
 * Children that outlive their pod's namespace, and DEL touching only what ADD made (issue 11, items 1, 2,
 * 3 and 5), through the stand-in plugin process with the production flags.
 *
 * The kernel hands an IPoIB child back to the host namespace when the pod's namespace is destroyed
 * (ipoib_link_ops.netns_refund), under its pod name, or `dev<ifindex>` when the host already has that
 * name (net/core/dev.c, default_device_exit_net). The stand-in's macvlan is deleted with the namespace
 * instead, so {@link refund} does what the kernel does for IPoIB: it moves the child back into the host,
 * renaming it only when its name is taken there, and then deletes the namespace.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { pluginCommand, type PluginRun, runPlugin, startPlugin } from "../../support/run.ts";
import { type IpLink, links, sh, shQuiet, suffix, TestNetns } from "../../support/net.ts";
import { exists } from "../../support/fs.ts";
import {
  cniEnv,
  GO_CNI,
  hostLocal,
  type Json,
  STANDIN,
  type StandinFixture,
  withStandinFixture,
} from "../../support/fixture.ts";
import { temporaryName } from "../../lib/temporary_name.ts";

/** The stand-in with tests/faults/inject.ts: an ADD that pauses at a kernel step, holding its lock. */
const faulty = pluginCommand("tests/faults/plugin.ts");

/** A name for the test's own (host) network namespace under /run/netns: a bind mount of it. */
class HostNetnsName implements AsyncDisposable {
  readonly name: string;
  readonly path: string;
  private constructor(name: string) {
    this.name = name;
    this.path = `/run/netns/${name}`;
  }
  static async create(): Promise<HostNetnsName> {
    const h = new HostNetnsName(`rfhost${suffix(8)}`);
    // `ip netns attach` bind-mounts /proc/<pid>/ns/net; this process's main thread is in the host's.
    await sh("ip", "netns", "attach", h.name, String(Deno.pid));
    return h;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await shQuiet("ip", "netns", "del", this.name); // unmounts the name; the host namespace stays
  }
}

/** One attachment's world: the stand-in fixture, a name for the host namespace, and names no other test uses. */
interface World extends StandinFixture {
  host: HostNetnsName;
  network: string;
  containerId: string;
  ifname: string;
}

async function withWorld(body: (w: World) => Promise<void>): Promise<void> {
  await using host = await HostNetnsName.create();
  await withStandinFixture({ prefix: "tref", scratch: "ipoib-refund-" }, async (f) => {
    const s = suffix(6);
    await body({ ...f, host, network: `refund-${s}`, containerId: `ctr-${f.pod.name}`, ifname: `rf${s}` });
  });
}

function conf(w: World, extra: Json = {}): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name: w.network,
    type: "ipoib",
    master: w.master.name,
    ipam: hostLocal(w, "10.131.0.0/24"),
    ...extra,
  });
}

async function run(
  w: World,
  command: string,
  extra: Record<string, string> = {},
  c = conf(w),
): Promise<PluginRun> {
  return await runPlugin(STANDIN, cniEnv(w, command, extra), c);
}

async function add(w: World, extra: Record<string, string> = {}): Promise<void> {
  const r = await run(w, "ADD", extra);
  assertEquals(r.code, 0, `ADD failed: ${r.stdout} ${r.stderr}`);
}

async function del(w: World, extra: Record<string, string> = {}): Promise<void> {
  const r = await run(w, "DEL", extra);
  assertEquals(r.code, 0, `DEL failed: ${r.stdout} ${r.stderr}`);
  assertEquals(r.stdout, "");
}

/** The mark the child of `w`'s attachment must carry (README, "The mark"): all three fields are plain. */
function expectedMark(w: World): string {
  return `ipoib-cni/1 ${w.network} ${w.containerId} ${w.ifname}`;
}

/** Host links that are children of the master, by name. */
async function hostChildren(w: World): Promise<IpLink[]> {
  return await w.master.children();
}

/** The alias (IFLA_IFALIAS) as iproute2 reports it. */
function aliasOf(link: IpLink | undefined): string | undefined {
  return link?.ifalias;
}

/**
 * What the kernel does to an IPoIB child when its namespace `pod` is destroyed: moves it into the host
 * under its name, or `dev<ifindex>` (its index in the pod) when the host has that name; then the namespace
 * goes. Returns the name the child has in the host.
 */
async function refund(pod: TestNetns, ifname: string, host: HostNetnsName): Promise<string> {
  const child = (await links(pod.name)).find((l) => l.ifname === ifname);
  assert(child !== undefined, `no ${ifname} in ${pod.name}`);
  const taken = (await links()).some((l) => l.ifname === ifname);
  const name = taken ? `dev${child!.ifindex}` : ifname;
  await sh("ip", "-n", pod.name, "link", "set", ifname, "netns", host.name, ...(taken ? ["name", name] : []));
  await sh("ip", "netns", "del", pod.name);
  return name;
}

Deno.test("refund: the mark (alias) names the attachment and survives the move into the pod and back", async () => {
  await withWorld(async (w) => {
    await add(w);
    const inPod = (await links(w.pod.name)).find((l) => l.ifname === w.ifname);
    assertEquals(aliasOf(inPod), expectedMark(w));
    const name = await refund(w.pod, w.ifname, w.host);
    const back = (await hostChildren(w)).find((l) => l.ifname === name);
    assertEquals(aliasOf(back), expectedMark(w));
    await del(w);
  });
});

for (const renamed of [false, true]) {
  for (const netns of ["gone", "empty"] as const) {
    const how = renamed ? "as dev<ifindex> (its name taken in the host)" : "under its pod name";
    const given = netns === "gone" ? "a path that is gone" : 'CNI_NETNS=""';
    Deno.test(`refund: a child returned to the host ${how} is deleted by DEL with ${given}`, async () => {
      await withWorld(async (w) => {
        // Another link of the host already has the pod's interface name: it is not ours and must stay.
        const other = `${w.ifname}p`;
        if (renamed) await sh("ip", "link", "add", w.ifname, "type", "veth", "peer", "name", other);
        try {
          await add(w);
          assertEquals(w.leases.leases().length, 1);
          const name = await refund(w.pod, w.ifname, w.host);
          if (renamed) assertMatch(name, /^dev\d+$/);
          assertEquals((await hostChildren(w)).map((l) => l.ifname), [name]);
          await del(w, netns === "empty" ? { CNI_NETNS: "" } : {});
          assertEquals(await hostChildren(w), []);
          assertEquals(w.leases.leases(), []);
          if (renamed) {
            const host = (await links()).map((l) => l.ifname);
            assert(host.includes(w.ifname) && host.includes(other), "the host's own link was deleted");
          }
          await del(w); // repeated: nothing left to do, still success
        } finally {
          if (renamed) await shQuiet("ip", "link", "del", w.ifname);
        }
      });
    });
  }
}

Deno.test("refund: a pod path that exists but holds no child of ours (reused): DEL finds the child in the host", async () => {
  await withWorld(async (w) => {
    await add(w);
    const name = await refund(w.pod, w.ifname, w.host);
    await sh("ip", "netns", "add", w.pod.name); // the runtime reuses the path for a new namespace
    await del(w);
    assertEquals((await hostChildren(w)).map((l) => l.ifname), [], `${name} left`);
  });
});

Deno.test("refund: an ADD retried in a new namespace at the same path: DEL deletes its child and the returned one", async () => {
  await withWorld(async (w) => {
    // Layer 2 only: host-local refuses a second lease for one attachment, an IPAM plugin need not.
    const l2 = conf(w, { ipam: {} });
    const ok = (r: PluginRun) => assertEquals(r.code, 0, r.stdout + r.stderr);
    ok(await run(w, "ADD", {}, l2));
    const returned = await refund(w.pod, w.ifname, w.host);
    await sh("ip", "netns", "add", w.pod.name);
    ok(await run(w, "ADD", {}, l2)); // the runtime retries the sandbox under the same container id
    assertEquals((await hostChildren(w)).map((l) => l.ifname), [returned]);
    ok(await run(w, "DEL", {}, l2));
    assertEquals(await hostChildren(w), []);
    assertEquals(await w.pod.links(), []);
  });
});

Deno.test("refund: DEL with the host's namespace as CNI_NETNS deletes our returned child, nothing else", async () => {
  await withWorld(async (w) => {
    await add(w);
    await refund(w.pod, w.ifname, w.host);
    await del(w, { CNI_NETNS: w.host.path });
    assertEquals(await hostChildren(w), []);
    assertEquals(w.leases.leases(), []);
  });
});

/** Waits for `path` to exist (the paused plugin writes it); bounded so a lost plugin fails the test. */
async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 3000 && !exists(path); i++) await new Promise((r) => setTimeout(r, 10));
  assert(exists(path), `${path} never appeared`);
}

Deno.test("refund: GC deletes returned children whose attachment is not valid, keeps listed and in-flight ones", async () => {
  await withWorld(async (w) => {
    await using podB = await TestNetns.create("trefb");
    await using podC = await TestNetns.create("trefc");
    const scratch = await Deno.makeTempDir({ prefix: "ipoib-refund-" });
    try {
      const b = { CNI_CONTAINERID: `ctr-${podB.name}`, CNI_NETNS: podB.path };
      const c = { CNI_CONTAINERID: `ctr-${podC.name}`, CNI_NETNS: podC.path };
      await add(w); // A: its pod dies, the runtime forgets it
      await add(w, b); // B: its pod dies, but the runtime still lists the attachment
      const nameA = await refund(w.pod, w.ifname, w.host);
      const nameB = await refund(podB, w.ifname, w.host); // A has the name now: B comes back as dev<ifindex>
      assertMatch(nameB, /^dev\d+$/);
      // C: an ADD in flight, paused with its marked child in the host under the temporary name (lock held).
      const adding = startPlugin(
        faulty,
        cniEnv(w, "ADD", { ...c, FAULT_AT: "moveToNetns:1", FAULT_ACTION: "pause", FAULT_DIR: scratch }),
        conf(w),
      );
      await waitForFile(`${scratch}/paused`);
      const tmpC = await temporaryName(c.CNI_CONTAINERID, w.ifname);
      assertEquals((await hostChildren(w)).map((l) => l.ifname).sort(), [nameA, nameB, tmpC].sort());

      const valid = [{ containerID: b.CNI_CONTAINERID, ifname: w.ifname }, {
        containerID: "other",
        ifname: "net1",
      }];
      const gc = await runPlugin(
        STANDIN,
        { CNI_COMMAND: "GC", CNI_PATH: GO_CNI },
        conf(w, { "cni.dev/valid-attachments": valid }),
      );
      assertEquals(gc.code, 0, gc.stdout + gc.stderr);
      assertEquals((await hostChildren(w)).map((l) => l.ifname).sort(), [nameB, tmpC].sort());

      await Deno.writeTextFile(`${scratch}/resume`, "");
      const added = await adding.done;
      assertEquals(added.code, 0, added.stdout + added.stderr);
      // host-local predates GC (CNI 1.1.0): A's lease stays until A's DEL, which the runtime still sends.
      assertEquals(w.leases.leases().length, 3);
      await del(w);
      await del(w, b);
      await del(w, c);
    } finally {
      await Deno.remove(scratch, { recursive: true }).catch(() => {});
    }
  });
});

Deno.test("refund: GC of another network, or without valid-attachments, deletes no child", async () => {
  await withWorld(async (w) => {
    await add(w);
    const name = await refund(w.pod, w.ifname, w.host);
    for (const extra of [{ name: `${w.network}x`, "cni.dev/valid-attachments": [] }, {}]) {
      const gc = await runPlugin(STANDIN, { CNI_COMMAND: "GC", CNI_PATH: GO_CNI }, conf(w, extra));
      assertEquals(gc.code, 0, gc.stdout + gc.stderr);
      assertEquals((await hostChildren(w)).map((l) => l.ifname), [name]);
    }
    await del(w, { CNI_NETNS: "" });
  });
});

// Item 3: DEL removes only what ADD made.

Deno.test("DEL after a refused ADD leaves another plugin's interface of that name, and its host peer", async () => {
  await withWorld(async (w) => {
    const peer = `${w.ifname}h`;
    // Another plugin's eth0-like veth: one end in the pod under CNI_IFNAME, the other in the host.
    await sh("ip", "link", "add", peer, "type", "veth", "peer", "name", w.ifname, "netns", w.pod.name);
    try {
      const r = await run(w, "ADD");
      assertEquals(r.code, 1);
      assertEquals((r.json as Json).code, 4);
      await del(w);
      assertEquals((await w.pod.links()).map((l) => l.ifname), [w.ifname], "the pod's interface was deleted");
      assert((await links()).some((l) => l.ifname === peer), "its host peer was deleted");
    } finally {
      await shQuiet("ip", "link", "del", peer);
    }
  });
});

Deno.test("DEL with CNI_IFNAME=lo succeeds and leaves lo", async () => {
  await withWorld(async (w) => {
    const lo = { CNI_IFNAME: "lo" };
    const r = await run(w, "ADD", lo);
    assertEquals(r.code, 1);
    assertEquals((r.json as Json).code, 4);
    await del(w, lo);
    await del(w, lo);
    assert((await links(w.pod.name)).some((l) => l.ifname === "lo"));
  });
});

Deno.test("DEL leaves a host link that has the temporary name but is not a child of ours", async () => {
  await withWorld(async (w) => {
    const tmp = await temporaryName(w.containerId, w.ifname);
    await sh("ip", "link", "add", tmp, "type", "veth", "peer", "name", `${w.ifname}t`);
    try {
      await del(w);
      assert((await links()).some((l) => l.ifname === tmp), `${tmp} was deleted`);
    } finally {
      await shQuiet("ip", "link", "del", tmp);
    }
  });
});

Deno.test("DEL deletes our child: marked, and unmarked (made before the mark) by kind and parent", async () => {
  await withWorld(async (w) => {
    await add(w);
    await del(w);
    assertEquals(await w.pod.links(), []);
    await add(w);
    await sh("ip", "-n", w.pod.name, "link", "set", w.ifname, "alias", "");
    assertEquals(aliasOf((await links(w.pod.name)).find((l) => l.ifname === w.ifname)), undefined);
    await del(w);
    assertEquals(await w.pod.links(), []);
  });
});

Deno.test("DEL leaves a child of the master in the pod that carries another attachment's mark", async () => {
  await withWorld(async (w) => {
    await add(w, { CNI_CONTAINERID: "someone-else" });
    await del(w);
    assertEquals((await w.pod.links()).map((l) => l.ifname), [w.ifname]);
    await del(w, { CNI_CONTAINERID: "someone-else" });
  });
});

// Item 5: the host's own namespace as CNI_NETNS.

Deno.test("the host's own namespace as CNI_NETNS: ADD and CHECK refuse it (code 8) touching nothing", async () => {
  await withWorld(async (w) => {
    for (const path of [w.host.path, `/proc/${Deno.pid}/ns/net`, "/proc/self/ns/net"]) {
      const r = await run(w, "ADD", { CNI_NETNS: path });
      assertEquals(r.code, 1, `${path}: ${r.stdout}`);
      assertEquals((r.json as Json).code, 8);
      assertEquals((r.json as Json).msg, `network namespace ${path} is the host's own network namespace`);
      assertEquals(await hostChildren(w), []);
      assertEquals(w.leases.leases(), []);
      const prevResult = {
        cniVersion: "1.1.0",
        interfaces: [{ name: w.ifname, sandbox: path }],
        ips: [{ address: "10.131.0.2/24", interface: 0 }],
      };
      const check = await run(w, "CHECK", { CNI_NETNS: path }, conf(w, { prevResult }));
      assertEquals(check.code, 1, check.stdout);
      assertEquals((check.json as Json).code, 8);
    }
  });
});

Deno.test("the host's own namespace as CNI_NETNS: DEL succeeds and leaves the host's link of that name", async () => {
  await withWorld(async (w) => {
    const peer = `${w.ifname}q`;
    await sh("ip", "link", "add", w.ifname, "type", "veth", "peer", "name", peer);
    try {
      for (const path of [w.host.path, `/proc/${Deno.pid}/ns/net`, "/proc/self/ns/net"]) {
        await del(w, { CNI_NETNS: path });
        assert(
          (await links()).some((l) => l.ifname === w.ifname),
          `${path}: the host's ${w.ifname} was deleted`,
        );
      }
    } finally {
      await shQuiet("ip", "link", "del", w.ifname);
    }
  });
});

// Item 2: a namespace path that is gone in any form is gone.

Deno.test("DEL on /proc/<pid>/ns/net of a process that has exited succeeds and leaves nothing", async () => {
  await withWorld(async (w) => {
    // unshare execs the shell in a new namespace; "ready" comes once it is in it; the pid stays the same.
    const sleeper = new Deno.Command("unshare", {
      args: ["-n", "sh", "-c", "echo ready; exec sleep 600"],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = sleeper.stdout.getReader();
    const first = await reader.read();
    assertEquals(new TextDecoder().decode(first.value).trim(), "ready");
    reader.releaseLock();
    const path = `/proc/${sleeper.pid}/ns/net`;
    try {
      await add(w, { CNI_NETNS: path });
      assertEquals(w.leases.leases().length, 1);
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
      await sleeper.stdout.cancel();
    }
    await del(w, { CNI_NETNS: path });
    assertEquals(w.leases.leases(), []);
  });
});
