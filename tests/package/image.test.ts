/**
 * `make image` and the Dockerfiles, without a Docker engine: a recording stand-in for the docker client shows
 * what make would run, and the Dockerfiles are read as text.
 */

import { assert, assertEquals, assertFalse, assertMatch, assertStringIncludes } from "@std/assert";
import { archs, makeEnv, REPO_ROOT, runMake, tempDir, TMP_ROOT } from "./helpers.ts";

const MAKE = { read: true, write: [TMP_ROOT], run: true, env: true };

/** A docker client stand-in that logs each call (and what build/denort holds then) and succeeds. */
async function fakeDocker(dir: string): Promise<{ bin: string; calls: () => Promise<string[]> }> {
  const bin = `${dir}/docker`;
  const log = `${dir}/docker.log`;
  await Deno.writeTextFile(
    bin,
    `#!/bin/sh\necho "$* | denort: $(ls build/denort 2>/dev/null | tr '\\n' ' ')" >> '${log}'\n`,
    { mode: 0o755 },
  );
  return {
    bin,
    calls: async () => (await Deno.readTextFile(log).catch(() => "")).split("\n").filter((l) => l !== ""),
  };
}

Deno.test({
  name: "make image with Dockerfile.ppc64le or ARCH=ppc64le stops with the reason and never calls docker",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const docker = await fakeDocker(tmp.path);
  const runs = [
    await runMake(["image"], makeEnv({ DOCKERFILE: "Dockerfile.ppc64le", DOCKER: docker.bin })),
    await runMake(["image", "ARCH=ppc64le"], makeEnv({ DOCKER: docker.bin })),
    await runMake(["image-multiarch", "DOCKERFILE=Dockerfile.ppc64le"], makeEnv({ DOCKER: docker.bin })),
  ];
  for (const r of runs) {
    assert(r.code !== 0, r.stdout);
    assertStringIncludes(r.stderr, "ppc64le is not supported");
    assertStringIncludes(r.stderr, "denoland/rusty_v8 issue 1445");
    assert(r.ms < 10_000, `took ${Math.round(r.ms)} ms`);
  }
  assertEquals(await docker.calls(), []);
});

Deno.test({
  name: "make image builds with buildx for the host architecture, or for arm64/amd64 with a suffixed tag",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const docker = await fakeDocker(tmp.path);
  const { host, other } = await archs();
  const env = makeEnv({ DOCKER: docker.bin });
  const vars = ["VERSION=1.0.0", "COMMIT=abc123", "DATE=2026-01-01T00:00:00Z"];
  assertEquals((await runMake(["image", ...vars], env)).code, 0);
  assertEquals(
    (await runMake(["image", `ARCH=${other}`, "IMAGE=reg.example/ipoib-cni", ...vars], env)).code,
    0,
  );
  const builds = (await docker.calls()).filter((c) => c.startsWith("buildx build"));
  assertEquals(builds.length, 2);
  const args = "-f Dockerfile --build-arg VERSION=1.0.0 --build-arg COMMIT=abc123 " +
    "--build-arg DATE=2026-01-01T00:00:00Z";
  assertEquals(
    builds[0],
    `buildx build --load --platform linux/${host} ${args} -t ipoib-cni:latest . | denort: `,
  );
  assertEquals(
    builds[1],
    `buildx build --load --platform linux/${other} ${args} -t reg.example/ipoib-cni:latest-${other} . | denort: `,
  );
});

Deno.test({
  name: "make image lends a checked DENORT_BIN to the build context for the build only",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const docker = await fakeDocker(tmp.path);
  const { host, other } = await archs();
  const target = host === "amd64" ? "x86_64-unknown-linux-gnu" : "aarch64-unknown-linux-gnu";
  // A copy of an executable of the host's architecture passes the check as well as a real denort would.
  await Deno.copyFile("/bin/true", `${tmp.path}/denort`);
  const lent = `${REPO_ROOT}/build/denort/denort-${target}`;
  const before = await Deno.stat(lent).then(() => true, () => false);
  const r = await runMake(["image"], makeEnv({ DOCKER: docker.bin, DENORT_BIN: `${tmp.path}/denort` }));
  assertEquals(r.code, 0, r.stderr);
  const build = (await docker.calls()).find((c) => c.startsWith("buildx build"));
  assertMatch(build ?? "", new RegExp(`\\| denort: denort-${target} $`));
  if (!before) assertFalse(await Deno.stat(lent).then(() => true, () => false), `${lent} left behind`);

  const wrong = await runMake(
    ["image", `ARCH=${other}`],
    makeEnv({ DOCKER: docker.bin, DENORT_BIN: `${tmp.path}/denort` }),
  );
  assert(wrong.code !== 0);
  assertStringIncludes(wrong.stderr, "needs denort for");
});

Deno.test({
  name: "Dockerfile.ppc64le fails at its first instruction, which carries the explanation, and has no FROM",
  permissions: { read: [REPO_ROOT] },
}, async () => {
  const text = await Deno.readTextFile(`${REPO_ROOT}/Dockerfile.ppc64le`);
  const instructions = text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  assertEquals(instructions.length, 1);
  // Not a Dockerfile instruction: BuildKit and the legacy builder both stop parsing here ("unknown instruction").
  assertMatch(instructions[0]!, /^IPOIB_CNI_PPC64LE_IS_NOT_SUPPORTED /);
  assertStringIncludes(instructions[0]!, "denoland/rusty_v8 issue 1445");
  assertFalse(/^\s*FROM\b/im.test(text));
});

Deno.test({
  name:
    "Dockerfile: native build stage with Deno from npm, runtime stage of copies with the installer entrypoint",
  permissions: { read: [REPO_ROOT] },
}, async () => {
  const text = await Deno.readTextFile(`${REPO_ROOT}/Dockerfile`);
  const lines = text.replace(/\\\n/g, " ").split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  const froms = lines.filter((l) => l.startsWith("FROM "));
  assertEquals(froms, ["FROM --platform=$BUILDPLATFORM ${DEBIAN_IMAGE} AS build", "FROM ${RUNTIME_IMAGE}"]);
  assertMatch(text, /^ARG DEBIAN_IMAGE=debian:\w+$/m);
  assertMatch(text, /^ARG RUNTIME_IMAGE=debian:\w+-slim$/m);
  assertMatch(text, /npm install --global .*"deno@\$\{DENO_VERSION\}"/);
  assertMatch(text, /libnl-3-200:\$\{TARGETARCH\}.*libnl-route-3-200:\$\{TARGETARCH\}/s);
  assertMatch(text, /make build ARCH="\$\{TARGETARCH\}" BUILD_DIR=\/out/);
  // The pinned Deno of the image is the Makefile's.
  const makefile = await Deno.readTextFile(`${REPO_ROOT}/Makefile`);
  const pinned = /^DENO_VERSION := (\S+)$/m.exec(makefile)?.[1];
  assertStringIncludes(text, `ARG DENO_VERSION=${pinned}`);
  // The runtime stage runs nothing (no emulation for a foreign architecture) and holds exactly the three parts.
  const runtime = lines.slice(lines.indexOf("FROM ${RUNTIME_IMAGE}"));
  assertFalse(runtime.some((l) => l.startsWith("RUN ")), runtime.join("\n"));
  assert(runtime.includes("COPY --from=build /out/ipoib /out/ipoib-installer /opt/ipoib-cni/"));
  assert(runtime.includes("COPY --from=build /out/ipoib.d/ /opt/ipoib-cni/ipoib.d/"));
  assert(runtime.includes('ENTRYPOINT ["/opt/ipoib-cni/ipoib-installer"]'));
});

Deno.test({
  name:
    ".dockerignore keeps the checkout's Deno, git history and build output out of the context, except build/denort",
  permissions: { read: [REPO_ROOT] },
}, async () => {
  const patterns = (await Deno.readTextFile(`${REPO_ROOT}/.dockerignore`)).split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  for (const p of [".git", ".tools", "build/*", "!build/denort"]) assert(patterns.includes(p), p);
  assert(
    patterns.indexOf("!build/denort") > patterns.indexOf("build/*"),
    "the exception must follow the rule",
  );
});
