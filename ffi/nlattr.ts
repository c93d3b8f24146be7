/**
 * Netlink attributes (struct nlattr: u16 length, u16 type, value, padded to 4 bytes) read from
 * bytes already copied out of C memory. Pure: no FFI, so the decoding is testable anywhere.
 * Values are in host byte order, as netlink carries them.
 * @module
 */

/** NLA_F_NESTED and NLA_F_NET_BYTEORDER share the type field with the type itself. */
const NLA_TYPE_MASK = 0x3fff;
const NLA_HDRLEN = 4;
const NLA_ALIGNTO = 4;

/** Netlink values are in host byte order: read them with this endianness. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Attribute values by type; for a repeated type the last one wins, as in the kernel's nla_parse. */
export type Attributes = Map<number, Uint8Array>;

/**
 * Splits a run of attributes (a message's tail, or a nest's value) into values by type, with the
 * flag bits removed from the type. Stops at the first malformed header, as libnl's nla_ok does.
 */
export function parseAttributes(bytes: Uint8Array): Attributes {
  const out: Attributes = new Map();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + NLA_HDRLEN <= bytes.length) {
    const len = view.getUint16(at, HOST_LITTLE_ENDIAN);
    if (len < NLA_HDRLEN || at + len > bytes.length) break;
    const type = view.getUint16(at + 2, HOST_LITTLE_ENDIAN) & NLA_TYPE_MASK;
    out.set(type, bytes.subarray(at + NLA_HDRLEN, at + len));
    at += (len + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1);
  }
  return out;
}

/** The value of `type` when it is exactly `size` bytes long, as a view for reading it. */
export function fixedAttr(attrs: Attributes, type: number, size: number): DataView | null {
  const v = attrs.get(type);
  return v !== undefined && v.length === size ? new DataView(v.buffer, v.byteOffset, size) : null;
}

/** A u16 attribute's value; null when absent or not 2 bytes long. */
export function attrU16(attrs: Attributes, type: number): number | null {
  return fixedAttr(attrs, type, 2)?.getUint16(0, HOST_LITTLE_ENDIAN) ?? null;
}

/** A string attribute's value up to its NUL (iproute2 sends some without one); null when absent. */
export function attrString(attrs: Attributes, type: number): string | null {
  const v = attrs.get(type);
  if (v === undefined) return null;
  const nul = v.indexOf(0);
  return new TextDecoder().decode(nul >= 0 ? v.subarray(0, nul) : v);
}
