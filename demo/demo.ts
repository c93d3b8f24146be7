/**
 * `make demo`: the plugin on an embedded default config, in a pod namespace the demo creates and removes.
 * With an IPoIB master (MASTER=ib0, or the first one found) it runs the real plugin; without one it says so
 * and runs the full plugin with the stand-in child kind (macvlan on a veth master), labelled as such.
 * @module
 */

import { links, sh, suffix, TestLeases, TestMaster, TestNetns } from "../support/net.ts";
import { pluginCommand, runPlugin } from "../support/run.ts";

/** The embedded default network configuration; `master` and `dataDir` are filled in per run. */
function defaultConfig(master: string, dataDir: string) {
  return {
    cniVersion: "1.1.0",
    name: "ipoib-demo",
    type: "ipoib",
    master,
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: "192.168.250.0/24", rangeStart: "192.168.250.10", rangeEnd: "192.168.250.200" }]],
      routes: [{ dst: "192.168.0.0/16" }],
    },
  };
}

/** The first IPoIB interface of the host, or the one MASTER names. */
async function findIpoibMaster(): Promise<string | null> {
  const wanted = Deno.env.get("MASTER");
  const all = await links();
  const ib = all.filter((l) => l.link_type === "infiniband" || l.linkinfo?.info_kind === "ipoib");
  if (wanted) {
    if (!all.some((l) => l.ifname === wanted)) throw new Error(`MASTER=${wanted}: no such interface`);
    return wanted;
  }
  return ib[0]?.ifname ?? null;
}

function heading(text: string): void {
  console.log(`\n=== ${text}`);
}

async function main(): Promise<number> {
  const ipoib = await findIpoibMaster();
  await using leases = await TestLeases.create();
  await using pod = await TestNetns.create("ipoibdemo");
  let standin: TestMaster | null = null;
  try {
    let master: string;
    let entry: string;
    if (ipoib !== null) {
      master = ipoib;
      entry = "main.ts";
      heading(`IPoIB master: ${master}; running the real plugin (main.ts)`);
    } else {
      standin = await TestMaster.create();
      master = standin.name;
      entry = "tests/standin/main.ts";
      heading("No IPoIB interface on this machine (no InfiniBand hardware or driver)");
      console.log(
        "STAND-IN: running the full plugin with a macvlan child of a veth master in place of the IPoIB child.\n" +
          "It takes the same steps: create in the host namespace, move into the pod, rename, MTU, up, IPAM.\n" +
          `Master: veth ${master}. With InfiniBand, run: make demo MASTER=ib0`,
      );
    }
    const config = defaultConfig(master, leases.dir);
    const plugin = pluginCommand(entry);
    const env = {
      CNI_CONTAINERID: `demo-${suffix(8)}`,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "ib0",
      CNI_PATH: "/usr/lib/cni",
    };
    heading("Network configuration (stdin)");
    console.log(JSON.stringify(config, null, 2));

    heading(`ADD (CNI_NETNS=${pod.path}, CNI_IFNAME=${env.CNI_IFNAME})`);
    const add = await runPlugin(plugin, { ...env, CNI_COMMAND: "ADD" }, JSON.stringify(config));
    console.log(add.json ? JSON.stringify(add.json, null, 2) : add.stdout);
    if (add.code !== 0) {
      console.error(`ADD failed (exit ${add.code}): ${add.stderr}`);
      return 1;
    }

    heading(`Inside the pod namespace ${pod.name}: ip addr / ip route`);
    console.log((await sh("ip", "-n", pod.name, "addr", "show", "dev", env.CNI_IFNAME)).trimEnd());
    console.log((await sh("ip", "-n", pod.name, "route", "show")).trimEnd());

    heading("CHECK (prevResult = the ADD result)");
    const check = await runPlugin(
      plugin,
      { ...env, CNI_COMMAND: "CHECK" },
      JSON.stringify({ ...config, prevResult: add.json }),
    );
    console.log(check.code === 0 ? "CHECK: ok" : `CHECK failed: ${check.stdout}`);

    heading("DEL");
    const del = await runPlugin(plugin, { ...env, CNI_COMMAND: "DEL" }, JSON.stringify(config));
    console.log(del.code === 0 ? "DEL: ok" : `DEL failed: ${del.stdout}`);
    const left = (await pod.links()).map((l) => l.ifname);
    console.log(`links left in the pod: ${left.length === 0 ? "none" : left.join(", ")}`);
    console.log(`host-local leases left: ${leases.leases().length}`);
    return check.code === 0 && del.code === 0 && left.length === 0 && leases.leases().length === 0 ? 0 : 1;
  } finally {
    if (standin !== null) await standin[Symbol.asyncDispose]();
  }
}

Deno.exit(await main());
