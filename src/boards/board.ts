import { z } from 'zod';

/**
 * A board is data: everything the toolkit needs to know to build for it,
 * lay out its flash and boot it in QEMU. Addresses are 32-bit physical
 * addresses unless the name says otherwise.
 */
export const BoardSchema = z.object({
  name: z.string().regex(/^[a-z0-9_-]+$/),
  description: z.string(),
  arch: z.literal('mips'),
  endian: z.enum(['little', 'big']),
  /** Value for CROSS_COMPILE (binutils prefix). */
  crossCompile: z.string(),
  /** clang --target triple. */
  clangTarget: z.string(),
  /** -march / -mcpu flags for target programs built by the toolkit. */
  cpuFlags: z.array(z.string()),
  /** Physical base of the flash window the CPU executes from. */
  flashPhys: z.number().int().nonnegative(),
  /** Size of that window: the flash budget. */
  flashSize: z.number().int().positive(),
  /** Physical address of the kernel image in flash (CONFIG_XIP_PHYS_ADDR). */
  xipPhys: z.number().int().nonnegative(),
  /** Bytes at the start of the image the loader byte-swaps per 32-bit word (0: none). */
  loaderSwapBytes: z.number().int().nonnegative(),
  /** Bytes reserved for the boot shim at the start of the image. */
  shimSize: z.number().int().positive(),
  /** Physical RAM base and the kernel's RAM link address (KSEG0). */
  ramPhys: z.number().int().nonnegative(),
  linkAddress: z.number().int().nonnegative(),
  /** Kernel command line the shim hands over. */
  cmdline: z.string(),
  defconfigs: z.object({ minimal: z.string(), router: z.string().optional() }),
  qemu: z.object({
    binary: z.string(),
    machine: z.string(),
    cpu: z.string(),
    /**
     * Arguments every boot gets (console, no reboot, ...). They must name
     * every device the boot uses (-nodefaults): QEMU's default NIC and VGA
     * need option ROMs from packages qemu-system-* only recommends.
     */
    args: z.array(z.string()),
    /** The board's network interfaces: QEMU device model and the PCI slot of each (in the order eth0, eth1, ...). */
    nic: z.object({ model: z.string(), slots: z.array(z.string().regex(/^0x[0-9a-f]+$/)).min(1) }),
    defaultMemMiB: z.number().int().positive(),
  }),
});

export type Board = z.infer<typeof BoardSchema>;

export const KSEG0 = 0x80000000;
export const KSEG1 = 0xa0000000;

/** KSEG0 virtual address of a physical address, as an unsigned 32-bit number. */
export function kseg0(phys: number): number {
  return (KSEG0 + phys) >>> 0;
}
