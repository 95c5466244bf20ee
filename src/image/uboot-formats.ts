/**
 * The two U-Boot formats a router's flash holds next to an XIP kernel: the
 * legacy image header (include/image.h: struct legacy_img_hdr, all fields
 * big-endian) that bootm reads, and the saved environment (include/env.h:
 * a CRC32 in the target's byte order, then name=value\0 pairs ending in an
 * empty string, padded to the environment size). Both are checked in the
 * tests against u-boot-tools (mkimage -l, dumpimage -l, mkenvimage).
 */

import { UIMAGE_HEADER_SIZE } from '../boards/board.ts';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as zlib and U-Boot compute it). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const UIMAGE_MAGIC = 0x27051956;
/** One definition, in the board data (the flash map puts the kernel behind it). */
export const UIMAGE_HEADER_BYTES = UIMAGE_HEADER_SIZE;
const NAME_BYTES = 32;
/** The values of include/image.h this toolkit writes. */
export const IH = { osLinux: 5, archMips: 5, typeKernel: 2, compNone: 0 } as const;

export interface UImageHeader {
  /** Seconds since 1970 (mkimage: the build time; here the caller's, for reproducible images). */
  time: number;
  size: number;
  load: number;
  entry: number;
  dataCrc: number;
  os: number;
  arch: number;
  type: number;
  comp: number;
  name: string;
}

/**
 * A legacy uImage header for `data` (uncompressed MIPS Linux kernel). With
 * `load` the address where the data already lies in flash, bootm runs it in
 * place ("XIP Kernel Image") instead of copying it.
 */
export function uImageHeader(data: Uint8Array, o: { load: number; entry: number; name: string; time?: number }): Uint8Array {
  const name = new TextEncoder().encode(o.name);
  if (name.length >= NAME_BYTES) throw new Error(`uImage name '${o.name}' is ${name.length} bytes; at most ${NAME_BYTES - 1} fit`);
  const h = new Uint8Array(UIMAGE_HEADER_BYTES);
  const v = new DataView(h.buffer);
  v.setUint32(0, UIMAGE_MAGIC);
  v.setUint32(8, o.time ?? 0);
  v.setUint32(12, data.length);
  v.setUint32(16, o.load >>> 0);
  v.setUint32(20, o.entry >>> 0);
  v.setUint32(24, crc32(data));
  h[28] = IH.osLinux;
  h[29] = IH.archMips;
  h[30] = IH.typeKernel;
  h[31] = IH.compNone;
  h.set(name, 32);
  v.setUint32(4, crc32(h));
  return h;
}

/** Parse and check a legacy header (and, given the data after it, its CRC). Throws naming what is wrong. */
export function parseUImageHeader(bytes: Uint8Array, data?: Uint8Array): UImageHeader {
  if (bytes.length < UIMAGE_HEADER_BYTES) throw new Error(`${bytes.length} bytes: shorter than a uImage header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, UIMAGE_HEADER_BYTES);
  const magic = v.getUint32(0);
  if (magic !== UIMAGE_MAGIC) throw new Error(`magic 0x${magic.toString(16)}, not a uImage (0x27051956)`);
  const copy = new Uint8Array(bytes.subarray(0, UIMAGE_HEADER_BYTES));
  new DataView(copy.buffer).setUint32(4, 0);
  if (crc32(copy) !== v.getUint32(4)) throw new Error('header CRC does not match');
  const nameBytes = bytes.subarray(32, 64);
  const nul = nameBytes.indexOf(0);
  const hdr: UImageHeader = {
    time: v.getUint32(8),
    size: v.getUint32(12),
    load: v.getUint32(16),
    entry: v.getUint32(20),
    dataCrc: v.getUint32(24),
    os: bytes[28]!,
    arch: bytes[29]!,
    type: bytes[30]!,
    comp: bytes[31]!,
    name: new TextDecoder().decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)),
  };
  if (data !== undefined) {
    if (data.length < hdr.size) throw new Error(`the header says ${hdr.size} data bytes, ${data.length} follow`);
    if (crc32(data.subarray(0, hdr.size)) !== hdr.dataCrc) throw new Error('data CRC does not match');
  }
  return hdr;
}

/** Environment variable names U-Boot accepts: no '=', no NUL, not empty. */
function checkVar(name: string, value: string): void {
  if (name === '' || /[=\0\n]/.test(name)) throw new Error(`U-Boot variable name '${name}' is empty or holds '=', a NUL or a newline`);
  if (value.includes('\0')) throw new Error(`U-Boot variable ${name}: its value holds a NUL`);
}

/**
 * A saved U-Boot environment of `size` bytes (CONFIG_ENV_SIZE): CRC32 of
 * the data in the target's byte order, then the variables sorted by name
 * (as `saveenv` writes them), an empty string, then erased flash (0xff)
 * up to the size, as mkenvimage pads it.
 */
export function ubootEnv(vars: Record<string, string>, size: number, endian: 'little' | 'big'): Uint8Array {
  const text = Object.keys(vars)
    .sort()
    .map((k) => (checkVar(k, vars[k]!), `${k}=${vars[k]}\0`))
    .join('');
  const body = new TextEncoder().encode(`${text}\0`);
  if (body.length > size - 4) throw new Error(`the environment needs ${body.length + 4} bytes, the partition holds ${size}`);
  const env = new Uint8Array(size).fill(0xff);
  env.set(body, 4);
  new DataView(env.buffer).setUint32(0, crc32(env.subarray(4)), endian === 'little');
  return env;
}

/** Read a saved environment back: its variables, or why it is not valid (U-Boot would say "bad CRC"). */
export function parseUbootEnv(env: Uint8Array, endian: 'little' | 'big'): Record<string, string> {
  if (env.length < 5) throw new Error(`${env.length} bytes: too short for an environment`);
  const crc = new DataView(env.buffer, env.byteOffset, 4).getUint32(0, endian === 'little');
  if (crc32(env.subarray(4)) !== crc) throw new Error('bad CRC (U-Boot would use its default environment)');
  const vars: Record<string, string> = {};
  let i = 4;
  while (i < env.length && env[i] !== 0) {
    const end = env.indexOf(0, i);
    const pair = new TextDecoder().decode(env.subarray(i, end < 0 ? env.length : end));
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`entry '${pair}' at byte ${i} has no name=value`);
    vars[pair.slice(0, eq)] = pair.slice(eq + 1);
    if (end < 0) break;
    i = end + 1;
  }
  return vars;
}
