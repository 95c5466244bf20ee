import type { Board } from './board.ts';

/**
 * QEMU malta with a 24Kc core, little-endian. Facts from QEMU 7.2
 * hw/mips/malta.c: -bios (or -drive if=pflash) goes into the 4 MiB CFI flash
 * at 0x1e000000, and 0x1fc00000, where the CPU resets, is a read-only RAM
 * copy of it made at machine start. The shim runs from that copy; the
 * kernel executes from the flash device itself (0x9e001000 in KSEG0), so
 * whatever disturbs the chip disturbs the running kernel, as on a board.
 * On little-endian targets QEMU byte-swaps each 32-bit word of the first
 * 0x3e0000 bytes of the file.
 */
export const malta: Board = {
  name: 'malta',
  description: 'QEMU malta, MIPS 24Kc, little-endian, 4 MiB CFI flash at 0x1e000000 (copied to the reset vector)',
  arch: 'mips',
  endian: 'little',
  crossCompile: 'mipsel-linux-gnu-',
  clangTarget: 'mipsel-linux-gnu',
  cpuFlags: ['-march=mips32r2'],
  flashPhys: 0x1e000000,
  flashSize: 0x400000,
  xipPhys: 0x1e001000,
  loaderSwapBytes: 0x3e0000,
  shimSize: 0x1000,
  ramPhys: 0x00000000,
  linkAddress: 0x80100000,
  cmdline: 'console=ttyS0,115200',
  defconfigs: { minimal: 'xip_qemu_malta_defconfig', router: 'lwrt_qemu_malta_defconfig' },
  qemu: {
    binary: 'qemu-system-mipsel',
    machine: 'malta',
    cpu: '24Kc',
    args: ['-nodefaults', '-nographic', '-no-reboot', '-monitor', 'none', '-serial', 'stdio'],
    // The on-board AMD 79C973 sits in slot 11 (arch/mips/pci/fixup-malta.c
    // routes its interrupt; other slots below 18 have none).
    nic: { model: 'pcnet', slots: ['0x0b'] },
    defaultMemMiB: 256,
  },
};
