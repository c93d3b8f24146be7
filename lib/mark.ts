/**
 * The mark every child carries from its creation: its alias (IFLA_IFALIAS) names the attachment it was made
 * for, so the child is recognisable wherever it ends up, under any name. The kernel hands an IPoIB child
 * back to the host namespace when the pod's namespace is destroyed (ipoib_link_ops.netns_refund in
 * drivers/infiniband/ulp/ipoib/ipoib_netlink.c), keeping its name or renaming it `dev<ifindex>`; the
 * alias moves with the link in both directions.
 *
 * Format (ASCII, one space between fields, at most {@link MARK_MAX_BYTES} bytes):
 *
 *     ipoib-cni/1 <network> <containerID> <ifname>
 *
 * Each field is the value itself when it is 1 to its limit of characters from `[A-Za-z0-9_.-]`
 * (network 64, container id 128, ifname 15), else `#` and the first 32 hex digits of the SHA-256 of its
 * UTF-8 bytes. Either form is derived from the value alone, so a GC can match an attachment of
 * `cni.dev/valid-attachments` against a mark by encoding it the same way. Longest mark: 12 + 64 + 1 +
 * 128 + 1 + 33 = 239 bytes, within the kernel's IFALIASZ (256 with the NUL).
 * @module
 */

/** The mark's first field: names the plugin and the format's version. */
export const MARK_PREFIX = "ipoib-cni/1";

/** IFALIASZ of the kernel's if.h is 256 bytes with the terminating NUL. */
export const MARK_MAX_BYTES = 255;

const LITERAL = /^[A-Za-z0-9_.-]+$/;
const HASHED = /^#[0-9a-f]{32}$/;
const LIMITS = { network: 64, containerId: 128, ifname: 15 } as const;

/** The attachment a mark names, each field encoded as in the mark (value, or `#` and a hash). */
export interface MarkFields {
  network: string;
  containerId: string;
  ifname: string;
}

/** The first 16 bytes of the SHA-256 of `text`, in lower-case hex. */
async function hash128(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest, 0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One field as the mark holds it: the value itself when short and plain, else `#` and its hash. */
async function encodeMarkField(value: string, limit: number): Promise<string> {
  if (value.length <= limit && LITERAL.test(value)) return value;
  return "#" + await hash128(value);
}

/** The fields of the attachment (network name, container id, ifname) as a mark holds them. */
export async function markFields(network: string, containerId: string, ifname: string): Promise<MarkFields> {
  return {
    network: await encodeMarkField(network, LIMITS.network),
    containerId: await encodeMarkField(containerId, LIMITS.containerId),
    ifname: await encodeMarkField(ifname, LIMITS.ifname),
  };
}

/** The mark (alias) of the child of one attachment; equal marks mean the same attachment. */
export async function attachmentMark(network: string, containerId: string, ifname: string): Promise<string> {
  const f = await markFields(network, containerId, ifname);
  return `${MARK_PREFIX} ${f.network} ${f.containerId} ${f.ifname}`;
}

/**
 * The key of an attachment (container id and ifname, as a mark holds them: `fields` from {@link markFields}
 * or {@link parseMark}) for the files kept per attachment (lock files, records of refusal): 32 hex digits,
 * so no id or name can form a path. Not of the network's name: a pod holds one attachment per ifname, and a
 * DEL sent after the network was renamed must find the same files. Neither field holds a space, so joining
 * with one keeps ("a", "bc") apart from ("ab", "c").
 */
export async function attachmentKey(fields: { containerId: string; ifname: string }): Promise<string> {
  return await hash128(`${fields.containerId} ${fields.ifname}`);
}

/** The fields of `alias` when it is a mark of this format, else null (no alias, or someone else's). */
export function parseMark(alias: string | null): MarkFields | null {
  if (alias === null) return null;
  const parts = alias.split(" ");
  if (parts.length !== 4 || parts[0] !== MARK_PREFIX) return null;
  const [, network, containerId, ifname] = parts as [string, string, string, string];
  const ok = (field: string, limit: number) =>
    HASHED.test(field) || (field.length <= limit && LITERAL.test(field));
  if (!ok(network, LIMITS.network) || !ok(containerId, LIMITS.containerId) || !ok(ifname, LIMITS.ifname)) {
    return null;
  }
  return { network, containerId, ifname };
}
