/**
 * What goes into the kernel partition of a real board, in the form the
 * boot loader it was shipped with starts (board.vendor):
 *
 * - uimage: a legacy uImage, uncompressed, whose load address is what that
 *   U-Boot's bootm compares with to run an image in place (the header's
 *   address in U-Boot 1.1.x's bootm, which MediaTek's SDK U-Boot 1.1.3
 *   keeps; the data's in mainline U-Boot since 2008);
 * - tplink-lzma: TP-Link's U-Boot 1.1.4 LZMA-inflates whatever it boots,
 *   behind its 512-byte v1 firmware header (layout as OpenWrt's mktplinkfw
 *   and pepe2k's u-boot_mod describe it). The header is followed by an
 *   LZMA stream of four instructions (lui/ori/jr/nop), padded with zeros
 *   to 64 KiB, that it inflates to RAM and calls with its a0-a3; they jump
 *   to kernel_entry in flash and leave a0-a3 alone. The kernel follows at
 *   headerBytes. The jump is inflated to, and run from, KSEG1 (uncached):
 *   that U-Boot writes the data cache back before it jumps only by
 *   accident (its flush calls are commented out), which megabytes of
 *   kernel do and 16 bytes would not. The padding is what OpenWrt gives
 *   its own small loader for these boot loaders (some fail on less).
 */
import { kseg0, type Board } from '../boards/board.ts';
import { XipError, badInput } from '../errors.ts';
import { captureBytes } from '../proc.ts';
import { hex } from '../text.ts';
import { IH, parseUImageHeader, uImageHeader, UIMAGE_HEADER_BYTES, type UImageHeader } from './uboot-formats.ts';

/** TP-Link firmware header v1: its size, version word and the offsets of the fields U-Boot 1.1.4 reads (big-endian). */
export const TPLINK = {
  headerBytes: 0x200,
  /** Bytes the jump is padded to before it is compressed. */
  jumpPadBytes: 0x10000,
  version: 0x01000000,
  vendorOffset: 0x04,
  infoOffset: 0x1c,
  kernelLoad: 0x74,
  kernelEntry: 0x78,
  fwLength: 0x7c,
  kernelOffset: 0x80,
  kernelLength: 0x84,
} as const;

/** The four instructions that jump to `target`: lui t9; ori t9; jr t9; nop, in the board's byte order. */
export function jumpTo(target: number, endian: 'little' | 'big'): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  const le = endian === 'little';
  v.setUint32(0, (0x3c190000 | (target >>> 16)) >>> 0, le); // lui $t9, %hi(target)
  v.setUint32(4, (0x37390000 | (target & 0xffff)) >>> 0, le); // ori $t9, $t9, %lo(target)
  v.setUint32(8, 0x03200008, le); // jr $t9
  v.setUint32(12, 0, le); // nop (delay slot)
  return out;
}

/** The target of a jumpTo() sequence, or null when the bytes are not one. */
export function jumpTarget(code: Uint8Array, endian: 'little' | 'big'): number | null {
  if (code.length < 16) return null;
  const v = new DataView(code.buffer, code.byteOffset, 16);
  const le = endian === 'little';
  const lui = v.getUint32(0, le);
  const ori = v.getUint32(4, le);
  if (lui >>> 16 !== 0x3c19 || ori >>> 16 !== 0x3739 || v.getUint32(8, le) !== 0x03200008 || v.getUint32(12, le) !== 0) return null;
  return (((lui & 0xffff) << 16) | (ori & 0xffff)) >>> 0;
}

function xz(args: string[], input: Uint8Array, what: string): Uint8Array {
  return captureBytes('xz', args, input, `${what} (xz)`);
}

/**
 * What any XIP uImage must be, whoever boots it: started at kernel_entry,
 * an uncompressed MIPS Linux kernel. (Its load address is the loader's
 * business: the caller checks it.)
 */
export function uImageKernelProblems(hd: UImageHeader, entry: number | null): string[] {
  const problems: string[] = [];
  if (entry === null) problems.push('vmlinux has no kernel_entry symbol');
  else if (hd.entry !== entry) problems.push(`uImage entry point is ${hex(hd.entry)}, but kernel_entry is ${hex(entry)}`);
  if (hd.os !== IH.osLinux || hd.arch !== IH.archMips || hd.type !== IH.typeKernel || hd.comp !== IH.compNone) {
    problems.push(`uImage is os ${hd.os} arch ${hd.arch} type ${hd.type} comp ${hd.comp}, not an uncompressed MIPS Linux kernel (5 5 2 0)`);
  }
  return problems;
}

/**
 * An LZMA-alone stream of `data` with its uncompressed size in the header:
 * old LZMA decoders (LZMA SDK 4.x, in TP-Link's U-Boot) refuse the
 * "unknown size" that xz writes, and stop after that many bytes.
 */
export function lzmaAlone(data: Uint8Array): Uint8Array {
  const out = xz(['--format=lzma', '--lzma1=preset=0', '--stdout', '--compress'], data, 'LZMA stream of the jump');
  if (out.length < 13) throw new XipError(`xz wrote a ${out.length}-byte LZMA stream, shorter than its header`);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(5, data.length, true);
  v.setUint32(9, 0, true);
  return out;
}

/** The uncompressed size an LZMA-alone header gives (bytes 5..12, little-endian), or null for "unknown" (all ones). */
export function lzmaAloneSize(stream: Uint8Array): number | null {
  if (stream.length < 13) return null;
  const v = new DataView(stream.buffer, stream.byteOffset, 13);
  const lo = v.getUint32(5, true);
  const hi = v.getUint32(9, true);
  if (lo === 0xffffffff && hi === 0xffffffff) return null;
  return hi * 2 ** 32 + lo;
}

/**
 * Inflate an LZMA-alone stream (xz), as the board's loader would. The
 * stream carries its size and the end marker; xz before 5.4 refuses both
 * at once, so it is given the size as unknown and must stop at the marker.
 */
export function lzmaAloneInflate(stream: Uint8Array): Uint8Array {
  const copy = new Uint8Array(stream);
  copy.fill(0xff, 5, 13);
  return xz(['--format=lzma', '--stdout', '--decompress'], copy, 'LZMA stream in the kernel partition');
}

function putString(v: Uint8Array, at: number, s: string, max: number): void {
  const b = new TextEncoder().encode(s).subarray(0, max);
  v.set(b, at);
}

export interface VendorKernel {
  /** What the kernel partition holds, from its first byte: the loader's header, then the kernel. */
  bytes: Uint8Array;
  uimage?: { name: string; load: number; entry: number; dataBytes: number };
  /** Where TP-Link's U-Boot inflates the jump and calls it (load = entry), its compressed size, where it jumps. */
  tplink?: { load: number; lzmaBytes: number; jumpTarget: number };
}

/** The kernel partition's contents for the board's vendor loader; `kernel` is the xipImage, `entry` kernel_entry. */
export function vendorKernel(board: Board, kernel: Uint8Array, entry: number, name: string): VendorKernel {
  const v = board.vendor;
  if (!v) throw badInput(`board ${board.name} has no vendor loader entry`);
  const out = new Uint8Array(v.headerBytes + kernel.length);
  out.set(kernel, v.headerBytes);
  if (v.format === 'uimage') {
    if (v.headerBytes !== UIMAGE_HEADER_BYTES) throw badInput(`board ${board.name}: a uImage header is ${UIMAGE_HEADER_BYTES} bytes, not ${v.headerBytes} (vendor.headerBytes)`);
    const load = v.xipLoad === 'data' ? (v.bootm + UIMAGE_HEADER_BYTES) >>> 0 : v.bootm >>> 0;
    out.set(uImageHeader(kernel, { load, entry, name }));
    return { bytes: out, uimage: { name, load, entry: entry >>> 0, dataBytes: kernel.length } };
  }
  const load = v.trampolineLoad;
  if (load === undefined) throw badInput(`board ${board.name}: a tplink-lzma loader needs vendor.trampolineLoad (where the jump is inflated)`);
  const jump = new Uint8Array(TPLINK.jumpPadBytes);
  jump.set(jumpTo(entry, board.endian));
  const lzma = lzmaAlone(jump);
  if (TPLINK.headerBytes + lzma.length > v.headerBytes) {
    throw badInput(`board ${board.name}: TP-Link's header and the compressed jump take ${TPLINK.headerBytes + lzma.length} bytes, more than vendor.headerBytes ${hex(v.headerBytes)}`);
  }
  const dv = new DataView(out.buffer);
  dv.setUint32(0, TPLINK.version);
  putString(out, TPLINK.vendorOffset, 'mips-xip-kernel', 24);
  putString(out, TPLINK.infoOffset, `XIP kernel at ${hex(kseg0(board.xipPhys))}`, 36);
  dv.setUint32(TPLINK.kernelLoad, load);
  dv.setUint32(TPLINK.kernelEntry, load);
  dv.setUint32(TPLINK.fwLength, out.length);
  dv.setUint32(TPLINK.kernelOffset, TPLINK.headerBytes);
  dv.setUint32(TPLINK.kernelLength, lzma.length);
  out.set(lzma, TPLINK.headerBytes);
  return { bytes: out, tplink: { load, lzmaBytes: lzma.length, jumpTarget: entry >>> 0 } };
}

/**
 * Check a kernel partition against what the vendor loader needs and vmlinux's
 * kernel_entry: returns the problems (none: it boots as described) and one
 * line saying what was found.
 */
export function checkVendorKernel(board: Board, part: Uint8Array, entry: number | null): { problems: string[]; text: string } {
  const v = board.vendor;
  if (!v) return { problems: [`board ${board.name} has no vendor loader entry`], text: '' };
  const problems: string[] = [];
  if (v.format === 'uimage') {
    const want = v.xipLoad === 'data' ? (v.bootm + UIMAGE_HEADER_BYTES) >>> 0 : v.bootm >>> 0;
    try {
      const hd = parseUImageHeader(part, part.subarray(UIMAGE_HEADER_BYTES));
      if (hd.load !== want) problems.push(`uImage load address ${hex(hd.load)} is not ${hex(want)} (bootm ${hex(v.bootm)}, ${v.xipLoad ?? 'header'} address): ${v.name} would copy the kernel instead of running it in place`);
      problems.push(...uImageKernelProblems(hd, entry));
      return { problems, text: `uImage for ${v.name} (CRCs ok): load ${hex(hd.load)} = bootm ${hex(v.bootm)}, entry kernel_entry ${hex(hd.entry)}` };
    } catch (e) {
      return { problems: [`no valid uImage header at the kernel partition's start: ${(e as Error).message}`], text: '' };
    }
  }
  const dv = new DataView(part.buffer, part.byteOffset, part.byteLength);
  if (part.length < v.headerBytes || dv.getUint32(0) !== TPLINK.version) {
    return { problems: [`no TP-Link v1 header at the kernel partition's start (version word ${part.length >= 4 ? hex(dv.getUint32(0)) : 'missing'}, want ${hex(TPLINK.version)})`], text: '' };
  }
  const load = dv.getUint32(TPLINK.kernelLoad);
  const ep = dv.getUint32(TPLINK.kernelEntry);
  const len = dv.getUint32(TPLINK.kernelLength);
  if (load !== v.trampolineLoad || ep !== load) problems.push(`TP-Link header: load ${hex(load)}, entry ${hex(ep)}; want both ${hex(v.trampolineLoad ?? 0)}`);
  if (TPLINK.headerBytes + len > v.headerBytes) problems.push(`TP-Link header: ${len}-byte kernel data runs into the XIP kernel at +${hex(v.headerBytes)}`);
  let target: number | null = null;
  if (entry === null) problems.push('vmlinux has no kernel_entry symbol');
  try {
    const stream = part.subarray(TPLINK.headerBytes, TPLINK.headerBytes + len);
    const size = lzmaAloneSize(stream);
    const code = lzmaAloneInflate(stream);
    // TP-Link's LZMA decoder needs the size in the header: it refuses a stream that only ends with a marker.
    if (size === null) problems.push('the LZMA data gives no uncompressed size: TP-Link\'s U-Boot refuses such a stream');
    else if (size !== code.length) problems.push(`the LZMA header says ${size} bytes, the data inflates to ${code.length}`);
    target = jumpTarget(code, board.endian);
    if (target === null) problems.push(`the ${code.length} bytes the LZMA data inflates to are not the jump (lui/ori/jr/nop)`);
    else if (entry !== null && target !== entry) problems.push(`the inflated jump goes to ${hex(target)}, but kernel_entry is ${hex(entry)}`);
  } catch (e) {
    problems.push(`the TP-Link header's kernel data does not inflate: ${(e as Error).message}`);
  }
  return { problems, text: `TP-Link v1 header for ${v.name}: LZMA jump (${len} bytes) inflated at ${hex(load)} goes to kernel_entry ${hex(target ?? 0)}` };
}
