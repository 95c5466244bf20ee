import type { BoardData } from './board.ts';

/**
 * MediaTek MT7628AN/MT7688 (MIPS 24KEc, little-endian) on a VoCore2: 16 MiB
 * SPI-NOR that the SoC's SPI controller maps for reads at physical
 * 0x1c000000, 128 MiB DDR2 at 0. Mainline's arch/mips/boot/dts/ralink/
 * vocore2.dts is built into the kernel (CONFIG_DTB_VOCORE2): the vendor
 * U-Boot passes no device tree. The flash map is the one the board ships
 * with and OpenWrt keeps: U-Boot, its environment, the radio calibration
 * ("factory"), then the firmware, here split into the XIP kernel and the
 * settings in the last two sectors.
 *
 * The vendor loader is MediaTek's SDK U-Boot 1.1.3: its bootcmd is
 * `bootm 0xbc050000` (the KSEG1 alias of the kernel partition). Its bootm
 * reads the image through the SPI controller to check the CRCs, then starts
 * an uncompressed kernel in place when the header's load address is the
 * address bootm was given ("XIP Kernel Image"), jumping to its entry point.
 * QEMU has no MT7628 model: this board is built and verified, not booted.
 */
export const mt7628: BoardData = {
  name: 'mt7628',
  description: 'MediaTek MT7628 (VoCore2), MIPS 24KEc, little-endian, 16 MiB SPI-NOR mapped at 0x1c000000 (real board: built and verified, not booted)',
  arch: 'mips',
  endian: 'little',
  crossCompile: 'mipsel-linux-gnu-',
  clangTarget: 'mipsel-linux-gnu',
  cpuFlags: ['-march=mips32r2'],
  flashPhys: 0x1c000000,
  flashSize: 0x1000000,
  eraseSize: 0x10000,
  loaderSwapBytes: 0,
  flashMaps: {
    vendor: [
      { name: 'u-boot', offset: 0x0, size: 0x30000, readOnly: true, content: 'loader' },
      { name: 'u-boot-env', offset: 0x30000, size: 0x10000, readOnly: false, content: 'uboot-env' },
      { name: 'factory', offset: 0x40000, size: 0x10000, readOnly: true, content: 'calibration' },
      { name: 'kernel', offset: 0x50000, size: 0xf90000, readOnly: true, content: 'kernel' },
      { name: 'settings', offset: 0xfe0000, size: 0x20000, readOnly: false, content: 'settings' },
    ],
  },
  vendor: {
    name: 'MediaTek SDK U-Boot 1.1.3',
    format: 'uimage',
    bootm: 0xbc050000,
    xipLoad: 'header',
    headerBytes: 64,
    console: 'UART2 (ttyS2), 115200 8N1, on the VoCore2 dock',
  },
  ramPhys: 0x00000000,
  // The RAM part of an XIP kernel: one page above the exception vectors (patch 18 of the series).
  linkAddress: 0x80001000,
  cmdline: 'console=ttyS2,115200',
  mtdId: 'spi0.0',
  defconfigs: { minimal: 'xip_mt7628_vocore2_defconfig' },
  hostPackages: {
    binutils: 'binutils-mipsel-linux-gnu',
    gcc: 'gcc-mipsel-linux-gnu',
    uapiHeaders: 'linux-libc-dev-mipsel-cross',
  },
};
