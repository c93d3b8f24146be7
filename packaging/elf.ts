/**
 * Reads the machine an ELF executable was built for, from its header. The build refuses a `DENORT_BIN` of the
 * wrong architecture and the tests check what `deno compile` produced, both without running the file.
 * @module
 */

/** The Linux architectures this project builds for, by their Debian/Kubernetes names. */
export type Arch = "amd64" | "arm64";

/** ELF `e_machine` values of the supported architectures (System V ABI, "Machine" field). */
const MACHINES: Record<number, Arch> = { 62: "amd64", 183: "arm64" };

/** What {@linkcode readElfArch} found: an architecture this project knows, or why the file is not one. */
export type ElfArch = { ok: true; arch: Arch } | { ok: false; reason: string };

/**
 * Classifies the first bytes of a file: a 64-bit little-endian ELF for amd64 or arm64, or a reason why not.
 * @param header at least the first 20 bytes of the file
 */
export function elfArchOf(header: Uint8Array): ElfArch {
  if (header.length < 20) return { ok: false, reason: "too short to be an ELF executable" };
  if (header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c || header[3] !== 0x46) {
    return { ok: false, reason: "not an ELF executable" };
  }
  // Both supported targets are 64-bit little-endian; anything else cannot be one of them.
  if (header[4] !== 2 || header[5] !== 1) return { ok: false, reason: "not a 64-bit little-endian ELF file" };
  const machine = new DataView(header.buffer, header.byteOffset, header.byteLength).getUint16(18, true);
  const arch = MACHINES[machine];
  return arch
    ? { ok: true, arch }
    : { ok: false, reason: `ELF machine ${machine} is neither amd64 nor arm64` };
}

/**
 * Reads the ELF header of `path` and classifies it with {@linkcode elfArchOf}.
 * Throws what `Deno.open` throws when the file cannot be read.
 */
export async function readElfArch(path: string): Promise<ElfArch> {
  using file = await Deno.open(path, { read: true });
  const header = new Uint8Array(20);
  let filled = 0;
  while (filled < header.length) {
    const n = await file.read(header.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return elfArchOf(header.subarray(0, filled));
}
