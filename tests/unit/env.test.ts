import { assertEquals, assertThrows } from "@std/assert";
import { interfaceNameProblem, parseCniArgs, parseEnvironment } from "../../lib/env.ts";
import { CniError } from "../../lib/errors.ts";

const full = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc123",
  CNI_NETNS: "/run/netns/pod",
  CNI_IFNAME: "ib1",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

function codeOf(fn: () => unknown): { code: number; msg: string } {
  const e = assertThrows(fn, CniError) as CniError;
  return { code: e.code, msg: e.message };
}

Deno.test("parseEnvironment accepts a complete ADD environment", () => {
  const env = parseEnvironment(full);
  assertEquals(env.command, "ADD");
  assertEquals(env.containerId, "abc123");
  assertEquals(env.netns, "/run/netns/pod");
  assertEquals(env.ifname, "ib1");
  assertEquals(env.path, ["/opt/cni/bin", "/usr/lib/cni"]);
  assertEquals(env.args, { ignoreUnknown: false, values: {} });
});

const required: Record<string, string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  VERSION: [],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

for (const [verb, vars] of Object.entries(required)) {
  for (const name of vars) {
    Deno.test(`parseEnvironment refuses ${verb} without ${name} with code 4 naming it`, () => {
      const env: Record<string, string | undefined> = { ...full, CNI_COMMAND: verb };
      delete env[name];
      const { code, msg } = codeOf(() => parseEnvironment(env));
      assertEquals(code, 4);
      assertEquals(msg, `${name} is required for ${verb}`);
    });
  }
  Deno.test(`parseEnvironment accepts ${verb} with only what it requires`, () => {
    const env: Record<string, string> = { CNI_COMMAND: verb };
    for (const name of vars) env[name] = (full as Record<string, string>)[name]!;
    assertEquals(parseEnvironment(env).command, verb);
  });
}

Deno.test("parseEnvironment allows DEL without CNI_NETNS", () => {
  const env: Record<string, string | undefined> = { ...full, CNI_COMMAND: "DEL", CNI_NETNS: undefined };
  assertEquals(parseEnvironment(env).netns, "");
});

Deno.test("parseEnvironment refuses an unknown or missing verb with code 4", () => {
  assertEquals(codeOf(() => parseEnvironment({ ...full, CNI_COMMAND: "ATTACH" })).code, 4);
  assertEquals(codeOf(() => parseEnvironment({ ...full, CNI_COMMAND: "add" })).code, 4);
  assertEquals(
    codeOf(() => parseEnvironment({ ...full, CNI_COMMAND: undefined })).msg,
    "CNI_COMMAND is not set",
  );
});

Deno.test("parseEnvironment validates CNI_CONTAINERID", () => {
  for (const bad of ["-abc", ".x", "a b", "a/b", "ab;c", "ünïcode"]) {
    const { code, msg } = codeOf(() => parseEnvironment({ ...full, CNI_CONTAINERID: bad }));
    assertEquals(code, 4);
    assertEquals(msg.startsWith("CNI_CONTAINERID"), true);
  }
  for (const good of ["a", "0abc", "a_b.c-d", "A".repeat(64)]) {
    assertEquals(parseEnvironment({ ...full, CNI_CONTAINERID: good }).containerId, good);
  }
});

Deno.test("parseEnvironment validates CNI_IFNAME like the kernel", () => {
  for (const bad of [".", "..", "a/b", "a:b", "a b", "tab\tx", "x".repeat(16), "nul\0x"]) {
    const { code, msg } = codeOf(() => parseEnvironment({ ...full, CNI_IFNAME: bad }));
    assertEquals(code, 4);
    assertEquals(msg.startsWith("CNI_IFNAME"), true);
  }
  assertEquals(parseEnvironment({ ...full, CNI_IFNAME: "x".repeat(15) }).ifname, "x".repeat(15));
});

Deno.test("interfaceNameProblem counts bytes, not characters", () => {
  assertEquals(interfaceNameProblem("ééééééé"), null); // 14 bytes
  assertEquals(interfaceNameProblem("éééééééé"), "is longer than 15 bytes"); // 16 bytes
  assertEquals(interfaceNameProblem(""), "is empty");
});

Deno.test("parseCniArgs decodes K=V pairs and honours IgnoreUnknown", () => {
  assertEquals(parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web;FOO=bar"), {
    ignoreUnknown: true,
    values: { IgnoreUnknown: "1", K8S_POD_NAME: "web", FOO: "bar" },
  });
  assertEquals(parseCniArgs("IgnoreUnknown=true;X=a=b").values.X, "a=b");
  assertEquals(parseCniArgs("K8S_POD_NAMESPACE=default;").values, { K8S_POD_NAMESPACE: "default" });
  assertEquals(parseCniArgs(""), { ignoreUnknown: false, values: {} });
});

Deno.test("parseCniArgs refuses unknown keys without IgnoreUnknown, and malformed pairs", () => {
  assertEquals(codeOf(() => parseCniArgs("FOO=bar")).code, 4);
  assertEquals(codeOf(() => parseCniArgs("IgnoreUnknown=0;FOO=bar")).code, 4);
  assertEquals(codeOf(() => parseCniArgs("novalue")).code, 4);
  assertEquals(codeOf(() => parseCniArgs("=x;IgnoreUnknown=1")).code, 4);
});
