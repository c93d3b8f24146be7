/**
 * The name a new child link has between its creation in the host namespace and its rename in the pod.
 * @module
 */

/**
 * `ipo` and 12 hex digits derived from the attachment (container id and ifname): unique across concurrent
 * ADDs of different attachments, and known to a later DEL, so a child left under this name by an ADD that
 * was killed part-way (in the host, or in the pod before the rename) can be found and deleted.
 */
export async function temporaryName(containerId: string, ifname: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${containerId}\0${ifname}`));
  return "ipo" + Array.from(new Uint8Array(digest, 0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}
