import type { QemuBoardData } from './board.ts';
import { malta } from './malta.ts';

/**
 * QEMU malta with the same 24Kc core running big-endian (qemu-system-mips).
 * Everything but the byte order is malta's: the same flash chip and window,
 * the same device tree and defconfigs (the board's Kconfig lines turn the
 * byte order around). QEMU loads a big-endian -bios as it is stored, so no
 * part of the image is word-swapped and the whole chip may be written.
 * U-Boot: built from Debian's source (malta_defconfig, the same flash map
 * and environment place as maltael); Debian ships no big-endian malta
 * binary, so there is no LOADER=uboot-stock here.
 */
export const maltaBe: QemuBoardData = {
  ...malta,
  name: 'malta-be',
  description: 'QEMU malta, MIPS 24Kc, big-endian, 4 MiB CFI flash at 0x1e000000 (copied to the reset vector)',
  endian: 'big',
  crossCompile: 'mips-linux-gnu-',
  clangTarget: 'mips-linux-gnu',
  loaderSwapBytes: 0,
  // malta-dtshim.c: a big-endian Malta's system controller mishandles DMA to the last word of RAM.
  ramTopUnusedKiB: 4,
  flashMaps: { shim: malta.flashMaps.shim, uboot: malta.flashMaps.uboot },
  uboot: { ...malta.uboot!, recipe: 'firmware/u-boot/malta.json', stock: undefined, prompt: 'malta # ' },
  kconfig: ['CONFIG_CPU_BIG_ENDIAN=y', '# CONFIG_CPU_LITTLE_ENDIAN is not set'],
  qemu: { ...malta.qemu, binary: 'qemu-system-mips' },
  hostPackages: { ...malta.hostPackages, binutils: 'binutils-mips-linux-gnu', gcc: 'gcc-mips-linux-gnu', uapiHeaders: 'linux-libc-dev-mips-cross' },
};
