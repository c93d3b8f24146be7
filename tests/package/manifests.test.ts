/** The Kubernetes manifests under images/: valid YAML of the expected shape, consistent with the image. */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { parseAll } from "@std/yaml";
import { parseNetConf } from "../../lib/config.ts";
import { REPO_ROOT } from "./helpers.ts";

const READ = { read: [REPO_ROOT] };

// deno-lint-ignore no-explicit-any
type Doc = any;

async function load(name: string): Promise<Doc[]> {
  return parseAll(await Deno.readTextFile(`${REPO_ROOT}/images/${name}`)) as Doc[];
}

Deno.test({
  name: "the DaemonSet mounts the host's /opt/cni/bin at /host/opt/cni/bin and runs the installer privileged",
  permissions: READ,
}, async () => {
  const docs = await load("ipoib-cni-daemonset.yaml");
  assertEquals(docs.length, 1);
  const ds = docs[0];
  assertEquals([ds.apiVersion, ds.kind], ["apps/v1", "DaemonSet"]);
  assertEquals(ds.spec.selector.matchLabels, { "app.kubernetes.io/name": "ipoib-cni" });
  assertEquals(ds.spec.template.metadata.labels["app.kubernetes.io/name"], "ipoib-cni");
  const pod = ds.spec.template.spec;
  const volume = pod.volumes.find((v: Doc) => v.hostPath);
  assertEquals(volume.hostPath.path, "/opt/cni/bin");
  assertEquals(pod.containers.length, 1);
  const c = pod.containers[0];
  assertEquals(c.volumeMounts, [{ name: volume.name, mountPath: "/host/opt/cni/bin" }]);
  assertEquals(c.securityContext.privileged, true);
  // The installer is the command, pointed at the mount and at the plugin the image holds.
  const dockerfile = await Deno.readTextFile(`${REPO_ROOT}/Dockerfile`);
  const entrypoint = /^ENTRYPOINT \["([^"]+)"\]$/m.exec(dockerfile)?.[1];
  assertEquals(c.command, [entrypoint]);
  assert(c.args.includes("--cni-bin-dir=/host/opt/cni/bin"), c.args);
  assert(c.args.includes("--ipoib-bin-file=/opt/ipoib-cni/ipoib"), c.args);
  assertMatch(dockerfile, /COPY --from=build \/out\/ipoib .*\/opt\/ipoib-cni\/$/m);
});

Deno.test({
  name: "the DaemonSet tolerates control-plane taints, keeps to amd64/arm64 and asks for modest resources",
  permissions: READ,
}, async () => {
  const [ds] = await load("ipoib-cni-daemonset.yaml");
  const pod = ds.spec.template.spec;
  const keys = pod.tolerations.map((t: Doc) => `${t.key}:${t.operator}:${t.effect}`);
  assert(keys.includes("node-role.kubernetes.io/control-plane:Exists:NoSchedule"), keys);
  assert(keys.includes("node-role.kubernetes.io/master:Exists:NoSchedule"), keys);
  const terms = pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
  const arch = terms[0].matchExpressions.find((e: Doc) => e.key === "kubernetes.io/arch");
  assertEquals(arch.values, ["amd64", "arm64"]);
  const { requests, limits } = pod.containers[0].resources;
  const mi = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1]);
  const milli = (q: string) => Number(/^(\d+)m$/.exec(q)?.[1]);
  assert(milli(requests.cpu) <= 100 && mi(requests.memory) <= 128, JSON.stringify(requests));
  assert(milli(limits.cpu) >= milli(requests.cpu) && mi(limits.memory) >= mi(requests.memory));
  assert(mi(limits.memory) <= 256, limits.memory);
});

Deno.test({
  name: "the NetworkAttachmentDefinitions hold ipoib configs the plugin's own validator accepts",
  permissions: READ,
}, async () => {
  const docs = await load("ipoib-network-attachment-definition.yaml");
  assert(docs.length >= 1);
  const ipamTypes = new Set<string>();
  for (const nad of docs) {
    assertEquals([nad.apiVersion, nad.kind], ["k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"]);
    const config = JSON.parse(nad.spec.config);
    assertEquals(config.name, nad.metadata.name);
    const conf = parseNetConf(config);
    assertEquals(conf.type, "ipoib");
    assertEquals(typeof conf.master, "string");
    ipamTypes.add(conf.ipamType ?? "none");
  }
  assertEquals([...ipamTypes].sort(), ["host-local", "whereabouts"]);
  const withOptions = docs.map((d) => JSON.parse(d.spec.config)).find((c) => c.pkey !== undefined);
  assert(withOptions && Number.isInteger(withOptions.mtu), "one example shows pkey and mtu");
});
