import { assertEquals, assertThrows } from "@std/assert";
import {
  interfaceNameProblem,
  kernelNameProblem,
  parseEnvironment,
  requireCniPath,
  unusableIfnameProblem,
} from "../../lib/env.ts";
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
});

// CNI spec 1.1.0, "CNI operations": CNI_PATH is optional except for GC; the plugin asks for it only when
// it must execute an IPAM plugin (requireCniPath), so an `ipam: {}` network needs none on any verb.
const required: Record<string, string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  VERSION: [],
  GC: [],
  STATUS: [],
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
  Deno.test(`parseEnvironment accepts ${verb} with only what it requires, CNI_PATH included`, () => {
    const env: Record<string, string> = { CNI_COMMAND: verb };
    for (const name of vars) env[name] = (full as Record<string, string>)[name]!;
    assertEquals(parseEnvironment(env).command, verb);
    assertEquals(parseEnvironment(env).path, []);
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

const BAD_IFNAMES = [
  ".",
  "..",
  "a/b",
  "a:b",
  "a b",
  "tab\tx",
  "x".repeat(16),
  "nul\0x",
  "net%d",
  "a%",
  "%%",
  "n\u0085",
  "à",
];

Deno.test("parseEnvironment validates CNI_IFNAME like the kernel on ADD and CHECK, templates included", () => {
  for (const verb of ["ADD", "CHECK"]) {
    for (const bad of BAD_IFNAMES) {
      const { code, msg } = codeOf(() => parseEnvironment({ ...full, CNI_COMMAND: verb, CNI_IFNAME: bad }));
      assertEquals(code, 4, bad);
      assertEquals(msg.startsWith("CNI_IFNAME"), true);
    }
  }
  assertEquals(parseEnvironment({ ...full, CNI_IFNAME: "x".repeat(15) }).ifname, "x".repeat(15));
  assertEquals(
    interfaceNameProblem("net%d"),
    "contains '%', which the kernel expands as a template (net%d becomes net0)",
  );
});

Deno.test("parseEnvironment lets DEL through with a name ADD refuses: only the lease is left to release", () => {
  for (const bad of BAD_IFNAMES) {
    assertEquals(parseEnvironment({ ...full, CNI_COMMAND: "DEL", CNI_IFNAME: bad }).ifname, bad);
  }
});

Deno.test("requireCniPath is code 4 only when CNI_PATH names no directory", () => {
  requireCniPath(parseEnvironment(full), "host-local");
  for (const path of [undefined, "", ":"]) {
    const env = parseEnvironment({ ...full, CNI_PATH: path });
    const { code, msg } = codeOf(() => requireCniPath(env, "host-local"));
    assertEquals(code, 4);
    assertEquals(msg, "CNI_PATH is required for ADD");
  }
});

Deno.test("interfaceNameProblem counts bytes, not characters", () => {
  assertEquals(interfaceNameProblem("ééééééé"), null); // 14 bytes
  assertEquals(interfaceNameProblem("éééééééé"), "is longer than 15 bytes"); // 16 bytes
  assertEquals(interfaceNameProblem(""), "is empty");
});

Deno.test("CNI_IFNAME: every byte the kernel's isspace() accepts, every rune Go's unicode.IsSpace accepts", () => {
  // lib/ctype.c marks 9-13, 32 and 160 (0xa0) with _S; 0xa0 is the second byte of "à" (c3 a0).
  for (const name of ["a\tb", "a\nb", "a\vb", "a\fb", "a\rb", "a b", "à", "eth\u00e0", "\u0820x"]) {
    assertEquals(kernelNameProblem(name)?.startsWith("contains '/', ':', a NUL or whitespace"), true, name);
    assertEquals(unusableIfnameProblem(name), kernelNameProblem(name));
  }
  // Go's unicode.IsSpace: U+0085 (which JavaScript's \s lacks), U+00A0, and Unicode's White_Space.
  for (
    const rune of [
      "\u0085",
      "\u00a0",
      "\u1680",
      "\u2000",
      "\u200a",
      "\u2028",
      "\u2029",
      "\u202f",
      "\u205f",
      "\u3000",
    ]
  ) {
    assertEquals(unusableIfnameProblem(`n${rune}`) !== null, true, JSON.stringify(rune));
    const { code } = codeOf(() => parseEnvironment({ ...full, CNI_IFNAME: `n${rune}` }));
    assertEquals(code, 4, JSON.stringify(rune));
  }
  // The kernel itself takes U+0085 (c2 85) and U+2000 (e2 80 80): a master may be named so.
  assertEquals(kernelNameProblem("n\u0085"), null);
  assertEquals(interfaceNameProblem("n\u2000"), null);
  // Neither refuses U+FEFF (JavaScript's \s has it), nor other UTF-8 without a 0xa0 byte: Go macvlan accepts them.
  for (const name of ["n\ufeff", "é", "ü1", "net-1", "x\u0084"]) {
    assertEquals(unusableIfnameProblem(name), null, JSON.stringify(name));
    assertEquals(parseEnvironment({ ...full, CNI_IFNAME: name }).ifname, name);
  }
});

Deno.test("parseEnvironment never judges CNI_ARGS: its keys are for the IPAM plugin", () => {
  for (
    const args of [
      "IP=10.77.0.55/24",
      "FOO=bar",
      "IgnoreUnknown=0;FOO=bar",
      "novalue",
      "=x",
      "a=b=c",
      ";;",
      "\u00e9=1",
    ]
  ) {
    assertEquals(parseEnvironment({ ...full, CNI_ARGS: args }).command, "ADD", args);
    assertEquals(parseEnvironment({ ...full, CNI_COMMAND: "DEL", CNI_ARGS: args }).command, "DEL", args);
  }
});
