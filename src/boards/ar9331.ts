import type { BoardData } from './board.ts';

/**
 * Qualcomm Atheros AR9331 (MIPS 24Kc, big-endian) in a TP-Link TL-MR3020
 * v1: 4 MiB SPI-NOR mapped for reads at physical 0x1f000000, 32 MiB DDR at
 * 0. Mainline's arch/mips/boot/dts/qca/ar9331_tl_mr3020.dts is built into
 * the kernel (CONFIG_DTB_TL_MR3020, patch 19 of the series). The flash map
 * is the board's: TP-Link's U-Boot in the first 128 KiB, the firmware from
 * 0x20000 (where its bootcmd, `bootm 0x9f020000`, looks), the radio
 * calibration (ART) in the last sector; the settings take the two sectors
 * in front of it.
 *
 * TP-Link's U-Boot 1.1.4 boots nothing in place: its bootm reads TP-Link's
 * 512-byte firmware header and LZMA-inflates the kernel to the header's
 * load address, whatever the image. So the kernel partition starts with
 * such a header and a four-instruction jump to the XIP kernel, compressed;
 * U-Boot inflates the jump to uncached RAM and calls it with its arguments
 * (a0-a3), which it passes on. QEMU has no AR9331 model: built and verified only.
 */
export const ar9331: BoardData = {
  name: 'ar9331',
  description: 'Qualcomm Atheros AR9331 (TP-Link TL-MR3020), MIPS 24Kc, big-endian, 4 MiB SPI-NOR mapped at 0x1f000000 (real board: built and verified, not booted)',
  arch: 'mips',
  endian: 'big',
  crossCompile: 'mips-linux-gnu-',
  clangTarget: 'mips-linux-gnu',
  cpuFlags: ['-march=mips32r2'],
  flashPhys: 0x1f000000,
  flashSize: 0x400000,
  eraseSize: 0x10000,
  loaderSwapBytes: 0,
  flashMaps: {
    vendor: [
      { name: 'u-boot', offset: 0x0, size: 0x20000, readOnly: true, content: 'loader' },
      { name: 'kernel', offset: 0x20000, size: 0x3b0000, readOnly: true, content: 'kernel' },
      { name: 'settings', offset: 0x3d0000, size: 0x20000, readOnly: false, content: 'settings' },
      { name: 'art', offset: 0x3f0000, size: 0x10000, readOnly: true, content: 'calibration' },
    ],
  },
  vendor: {
    name: "TP-Link's U-Boot 1.1.4",
    format: 'tplink-lzma',
    bootm: 0x9f020000,
    // TP-Link's header (512 bytes) and the compressed jump, padded: the kernel starts 1 KiB into the partition.
    headerBytes: 0x400,
    // KSEG1: inflated and run uncached, so no cache stands between U-Boot's writes and the fetch (src/image/vendor.ts).
    trampolineLoad: 0xa0002000,
    console: 'the 4-pin header inside the case (ttyATH0), 115200 8N1, 3.3 V',
  },
  ramPhys: 0x00000000,
  // ath79's load address (arch/mips/ath79/Platform): the RAM part of an XIP kernel.
  linkAddress: 0x80060000,
  cmdline: 'console=ttyATH0,115200',
  mtdId: 'spi0.0',
  defconfigs: { minimal: 'xip_ar9331_tl_mr3020_defconfig', router: 'lwrt_ar9331_tl_mr3020_defconfig' },
  hostPackages: {
    binutils: 'binutils-mips-linux-gnu',
    gcc: 'gcc-mips-linux-gnu',
    uapiHeaders: 'linux-libc-dev-mips-cross',
  },
};
