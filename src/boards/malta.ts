import type { QemuBoardData } from './board.ts';

/**
 * QEMU malta with a 24Kc core, little-endian. Facts from QEMU 7.2
 * hw/mips/malta.c: -bios (or -drive if=pflash) goes into the 4 MiB CFI flash
 * at 0x1e000000 (an Intel command-set chip, 64 KiB sectors), and 0x1fc00000,
 * where the CPU resets, is a read-only RAM copy of it made at machine start.
 * The loader runs from that copy (the shim) or from the chip (U-Boot, linked
 * at 0xbe000000); the kernel executes from the flash device itself, so
 * whatever disturbs the chip disturbs the running kernel, as on a board.
 * On little-endian targets QEMU byte-swaps each 32-bit word of the first
 * 0x3e0000 bytes of the file; bytes beyond are seen as stored.
 */
export const malta: QemuBoardData = {
  name: 'malta',
  description: 'QEMU malta, MIPS 24Kc, little-endian, 4 MiB CFI flash at 0x1e000000 (copied to the reset vector)',
  arch: 'mips',
  endian: 'little',
  crossCompile: 'mipsel-linux-gnu-',
  clangTarget: 'mipsel-linux-gnu',
  cpuFlags: ['-march=mips32r2'],
  flashPhys: 0x1e000000,
  flashSize: 0x400000,
  eraseSize: 0x10000,
  loaderSwapBytes: 0x3e0000,
  flashMaps: {
    // The shim needs one page; the kernel (and a root in flash) may use
    // the chip up to the router's settings: the last two 64 KiB sectors,
    // beyond the range QEMU swaps at every start (a guest write there
    // would come back swapped), written by the router (docs/settings.md).
    shim: [
      { name: 'loader', offset: 0x0, size: 0x1000, readOnly: true, content: 'loader' },
      { name: 'kernel', offset: 0x1000, size: 0x3df000, readOnly: true, content: 'kernel' },
      { name: 'settings', offset: 0x3e0000, size: 0x20000, readOnly: false, content: 'settings' },
    ],
    // U-Boot (about 290 KiB) in five sectors, the XIP uImage after it, and
    // U-Boot's environment where its maltael build keeps it (CONFIG_ENV_ADDR
    // 0xbe3e0000, CONFIG_ENV_SIZE 0x20000), beyond QEMU's swapped range.
    uboot: [
      { name: 'u-boot', offset: 0x0, size: 0x50000, readOnly: true, content: 'loader' },
      { name: 'kernel', offset: 0x50000, size: 0x390000, readOnly: true, content: 'kernel' },
      { name: 'u-boot-env', offset: 0x3e0000, size: 0x20000, readOnly: false, content: 'uboot-env' },
    ],
  },
  uboot: {
    recipe: 'firmware/u-boot/maltael.json',
    bootdelay: 1,
    stock: {
      package: 'u-boot-qemu',
      binary: 'usr/lib/u-boot/maltael/u-boot.bin',
      pins: {
        bookworm: { version: '2023.01+dfsg-2+deb12u3', sha256: '02a14f0876b76c0d7d7934e9b83a77515c5bdbad1e00af84c445bfeb1e6b8665' },
        trixie: { version: '2025.01-3+deb13u1', sha256: 'a3751b5d36a411457b2e7a2834cdce0e5d40493e6588a65d51c5603740a0c71c' },
      },
      memMiB: 256,
    },
    prompt: 'maltael # ',
    // CONFIG_ENV_ADDR 0xbe3e0000, CONFIG_ENV_SIZE 0x20000 of the maltael build.
    env: { offset: 0x3e0000, size: 0x20000 },
  },
  ramPhys: 0x00000000,
  linkAddress: 0x80100000,
  cmdline: 'console=ttyS0,115200',
  deviceTree: { dtb: 'arch/mips/boot/dts/mti/malta.dtb', flashNode: '/flash@1e000000', bankWidth: 4 },
  mtdId: '1e000000.flash',
  defconfigs: { minimal: 'xip_qemu_malta_defconfig', router: 'lwrt_qemu_malta_defconfig' },
  qemu: {
    binary: 'qemu-system-mipsel',
    machine: 'malta',
    cpu: '24Kc',
    args: ['-nodefaults', '-nographic', '-no-reboot', '-monitor', 'none', '-serial', 'stdio'],
    // The router's WAN is the on-board AMD 79C973's slot 11, its LAN the
    // first add-in slot, 18 (arch/mips/pci/fixup-malta.c routes interrupts
    // to 10, 11, 12 and 18-21 only; 10 and 12 are the PIIX4 USB and sound).
    nic: { model: 'pcnet', slots: ['0x0b', '0x12'] },
    defaultMemMiB: 256,
    // CPU clock 320 MHz (hw/mips/malta.c), Count every 2nd cycle (cp0_count_rate 2).
    countHz: 160_000_000,
  },
  hostPackages: {
    binutils: 'binutils-mipsel-linux-gnu',
    gcc: 'gcc-mipsel-linux-gnu',
    uapiHeaders: 'linux-libc-dev-mipsel-cross',
    // One package has every MIPS system emulator: qemu-system-mipsel among them.
    qemu: 'qemu-system-mips',
  },
};
