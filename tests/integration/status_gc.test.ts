/**
 * STATUS and GC (CNI 1.1.0) through the stand-in plugin process. Debian's Go IPAM plugins predate 1.1.0,
 * so forwarding is shown with a recording IPAM script that declares 1.1.0 support.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { runPlugin } from "../../support/run.ts";
import { sh, TestMaster } from "../../support/net.ts";
import { STANDIN } from "../../support/fixture.ts";

type Json = Record<string, unknown>;

function conf(master: string, ipam: Json = {}): string {
  return JSON.stringify({ cniVersion: "1.1.0", name: "ibnet", type: "ipoib", master, ipam });
}

/** A CNI_PATH dir holding an IPAM plugin "recorder" that logs each call's verb and stdin, and succeeds. */
async function recordingIpam(): Promise<{ dir: string; log: string }> {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-recorder-" });
  const log = `${dir}/calls.log`;
  await Deno.writeTextFile(
    `${dir}/recorder`,
    `#!/bin/sh
input=$(cat)
echo "$CNI_COMMAND $input" >> ${log}
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'
fi
`,
    { mode: 0o755 },
  );
  return { dir, log };
}

Deno.test("STATUS succeeds while the master is present and up", async () => {
  await using master = await TestMaster.create();
  const r = await runPlugin(STANDIN, { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" }, conf(master.name));
  assertEquals(r.code, 0, r.stdout);
  assertEquals(r.stdout, "");
});

Deno.test("STATUS is code 50 when the master is down or missing", async () => {
  await using master = await TestMaster.create();
  await sh("ip", "link", "set", master.name, "down");
  const down = await runPlugin(
    STANDIN,
    { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" },
    conf(master.name),
  );
  assertEquals(down.code, 1);
  assertEquals((down.json as Json).code, 50);
  assertEquals((down.json as Json).msg, `master "${master.name}" is down`);
  const missing = await runPlugin(
    STANDIN,
    { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" },
    conf("nosuchib7"),
  );
  assertEquals((missing.json as Json).code, 50);
  assertMatch((missing.json as Json).msg as string, /master "nosuchib7" not found/);
});

Deno.test("STATUS and GC are forwarded to an IPAM plugin that supports 1.1.0", async () => {
  await using master = await TestMaster.create();
  const { dir, log } = await recordingIpam();
  try {
    const attachments = [{ containerID: "c1", ifname: "ib1" }, { containerID: "c2", ifname: "ib1" }];
    const gcConf = JSON.stringify({
      ...JSON.parse(conf(master.name, { type: "recorder" })),
      "cni.dev/valid-attachments": attachments,
    });
    const gc = await runPlugin(STANDIN, { CNI_COMMAND: "GC", CNI_PATH: dir }, gcConf);
    assertEquals(gc.code, 0, gc.stdout);
    const status = await runPlugin(
      STANDIN,
      { CNI_COMMAND: "STATUS", CNI_PATH: dir },
      conf(master.name, { type: "recorder" }),
    );
    assertEquals(status.code, 0, status.stdout);
    const calls = (await Deno.readTextFile(log)).trim().split("\n").map((l) => l.split(" ")[0]);
    assertEquals(calls, ["VERSION", "GC", "VERSION", "STATUS"]);
    const gcInput = JSON.parse((await Deno.readTextFile(log)).split("\n")[1]!.slice(3));
    assertEquals(gcInput["cni.dev/valid-attachments"], attachments);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GC with an IPAM plugin that predates 1.1.0 succeeds without forwarding", async () => {
  await using master = await TestMaster.create();
  const r = await runPlugin(
    STANDIN,
    { CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" },
    conf(master.name, { type: "host-local", ranges: [[{ subnet: "10.90.0.0/24" }]] }),
  );
  assertEquals(r.code, 0, r.stdout);
});
