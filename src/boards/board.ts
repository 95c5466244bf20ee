import { z } from 'zod';
import { badInput } from '../errors.ts';

/**
 * What starts the kernel: our 4 KiB boot shim; U-Boot built from Debian's
 * source with a corrected config, booting the XIP uImage by itself from its
 * saved environment; or Debian's stock U-Boot binary, driven at its prompt.
 * Both U-Boots use the board's uboot flash map. On a real board, the boot
 * loader the board shipped with (vendor): the image holds only what goes
 * into the kernel partition, in the form that loader boots.
 */
export const LOADERS = ['shim', 'uboot', 'uboot-stock', 'vendor'] as const;
export type Loader = (typeof LOADERS)[number];

/** The flash map a loader uses. */
export function mapOf(loader: Loader): 'shim' | 'uboot' | 'vendor' {
  return loader === 'shim' ? 'shim' : loader === 'vendor' ? 'vendor' : 'uboot';
}

/**
 * What a flash partition holds. calibration: the radio calibration data
 * (ART, factory) a board is shipped with, unique to the unit: never written.
 */
export const PARTITION_CONTENTS = ['loader', 'uboot-env', 'kernel', 'rootfs', 'settings', 'calibration', 'free'] as const;

/** One partition of the board's flash, as the loader, the image builder, verify and the kernel (mtdparts) see it. */
export const PartitionSchema = z.object({
  name: z.string().regex(/^[a-z0-9_-]+$/),
  /** Byte offset in the flash chip. */
  offset: z.number().int().nonnegative(),
  size: z.number().int().positive(),
  /** Read-only for the kernel (mtdparts `ro`). */
  readOnly: z.boolean(),
  content: z.enum(PARTITION_CONTENTS),
});
export type Partition = z.infer<typeof PartitionSchema>;

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
  /** Size of the flash chip: the flash budget. */
  flashSize: z.number().int().positive(),
  /** Erase sector size of the chip (partitions a loader or the kernel writes start and end on one). */
  eraseSize: z.number().int().positive(),
  /** Bytes at the start of the image the loader byte-swaps per 32-bit word (0: none). */
  loaderSwapBytes: z.number().int().nonnegative(),
  /** The flash partition map of each loader the board supports: the shim's (QEMU boards), U-Boot's, the vendor loader's (real boards). */
  flashMaps: z
    .object({ shim: z.array(PartitionSchema).min(2).optional(), uboot: z.array(PartitionSchema).min(2).optional(), vendor: z.array(PartitionSchema).min(2).optional() })
    .refine((m) => m.shim !== undefined || m.vendor !== undefined, 'a board needs a shim map (QEMU) or a vendor map (a real board)'),
  /**
   * The boot loader a real board is shipped with, as the kernel partition
   * must suit it. uimage: a legacy uImage, uncompressed, that its bootm
   * starts in place when the header's load address equals `xipLoad` of
   * bootm's address: 'header' (Ralink/MediaTek SDK U-Boot 1.1.3 compares
   * with the header's address) or 'data' (64 bytes further, where the
   * kernel starts). tplink-lzma: TP-Link's U-Boot 1.1.4 LZMA-inflates any
   * kernel it boots, behind its 512-byte firmware header: the partition
   * starts with such a header and a few instructions, compressed, that it
   * inflates to RAM and runs, and which jump to the XIP kernel behind them.
   */
  vendor: z
    .object({
      /** What the board runs, e.g. "MediaTek SDK U-Boot 1.1.3". */
      name: z.string(),
      format: z.enum(['uimage', 'tplink-lzma']),
      /** The address the stock boot command gives bootm (KSEG0 or KSEG1 alias of the kernel partition). */
      bootm: z.number().int().nonnegative(),
      xipLoad: z.enum(['header', 'data']).optional(),
      /** Bytes in front of the kernel in its partition (the uImage header; TP-Link's header and the inflated jump). */
      headerBytes: z.number().int().positive(),
      /** Where the TP-Link loader inflates the jump to and runs it (RAM below the kernel's RAM part; KSEG1, uncached). */
      trampolineLoad: z.number().int().nonnegative().optional(),
      /** The serial console: where to look on the bench. */
      console: z.string(),
    })
    .optional(),
  uboot: z
    .object({
      /** The source-built U-Boot (LOADER=uboot): its recipe file, repository-relative (firmware/u-boot/). */
      recipe: z.string(),
      /** Seconds it waits for a key before running the saved bootcmd. */
      bootdelay: z.number().int().nonnegative(),
      /** The stock binary (LOADER=uboot-stock): a Debian package per Debian release, pinned, never installed into the host; absent when Debian builds none for the board. */
      stock: z.object({
        package: z.string(),
        /** Path of u-boot.bin inside the package. */
        binary: z.string(),
        /** Debian codename -> pinned version and sha256 of the .deb. */
        pins: z.record(z.object({ version: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
        /** RAM it needs to start (it assumes this much). */
        memMiB: z.number().int().positive(),
      }).optional(),
      /** Its command prompt (the lab script waits for it). */
      prompt: z.string(),
      /** Where both U-Boots keep their environment (CONFIG_ENV_ADDR - flash base, CONFIG_ENV_SIZE): the map's uboot-env partition must be exactly this. */
      env: z.object({ offset: z.number().int().nonnegative(), size: z.number().int().positive() }),
    })
    .optional(),
  /**
   * KiB at the top of RAM the kernel's platform code leaves out of its memory
   * map, so its "Memory: .../NK" total is this much short of what QEMU was
   * given (big-endian malta: the last page, arch/mips/mti-malta/malta-dtshim.c).
   */
  ramTopUnusedKiB: z.number().int().nonnegative().optional(),
  /** Physical RAM base and the kernel's RAM link address (KSEG0). */
  ramPhys: z.number().int().nonnegative(),
  linkAddress: z.number().int().nonnegative(),
  /** Kernel command line the loader hands over (mtdparts is added from the flash map). */
  cmdline: z.string(),
  /**
   * The board's device tree as the kernel builds it (path in the kbuild
   * directory), the node of the flash chip the kernel executes from, and its
   * bus width: the image builder derives from it the tree the boot shim
   * passes when the root filesystem is in flash (src/boards/xipdtb.ts).
   */
  deviceTree: z.object({ dtb: z.string(), flashNode: z.string(), bankWidth: z.number().int().positive() }).optional(),
  /** The kernel's name of the flash chip (mtd-id of mtdparts=). */
  mtdId: z.string(),
  defconfigs: z.object({ minimal: z.string(), router: z.string().optional() }),
  /**
   * Kconfig lines every kernel for this board gets after its defconfig
   * (e.g. the byte order of a board that shares another's defconfigs).
   */
  kconfig: z.array(z.string().regex(/^(CONFIG_[A-Za-z0-9_]+=.*|# CONFIG_[A-Za-z0-9_]+ is not set)$/)).optional(),
  /** How QEMU runs the board; absent: a real board, built and verified but not booted here. */
  qemu: z
    .object({
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
    /**
     * The CP0 Count rate QEMU gives this machine, Hz: the kernel's
     * mips_hpt_frequency must equal it for cycle counts to mean time (the
     * boot-cost measurement sets it when it skips the kernel's own
     * calibration). malta: 160 MHz, per QEMU's hw/mips/malta.c.
     */
    countHz: z.number().int().positive(),
  })
    .optional(),
  /**
   * Debian packages (the same names on Debian 12 and 13) that bring the
   * board's host tools: the cross binutils (`<crossCompile>ld`), the cross
   * gcc, the kernel's UAPI headers for the cross triple (only a Recommends
   * of the cross gcc; busybox needs them) and QEMU (qemu.binary). xip doctor
   * checks and installs them.
   */
  hostPackages: z.object({ binutils: z.string(), gcc: z.string(), uapiHeaders: z.string(), qemu: z.string().optional() }),
});

export type BoardData = z.infer<typeof BoardSchema>;

/** How QEMU runs a board. */
export type QemuSpec = NonNullable<BoardData['qemu']>;
/** A board QEMU models: its definition has the qemu entry and the package of its emulator. */
export type QemuBoardData = BoardData & { qemu: QemuSpec; hostPackages: BoardData['hostPackages'] & { qemu: string } };

/** The board's QEMU entry; one line naming the board and what it can do instead when QEMU has no model of it. */
export function qemuOf(board: Pick<BoardData, 'name' | 'qemu'>): QemuSpec {
  if (!board.qemu) {
    throw badInput(`board ${board.name} cannot be booted here: QEMU has no model of it, so it is built and verified only (make BOARD=${board.name} image verify; docs/porting.md lists what to check on the bench)`);
  }
  return board.qemu;
}

/** The loader a board gets unless one is chosen: the boot shim where QEMU boots it, else the board's own. */
export function defaultLoader(board: Pick<BoardData, 'flashMaps'>): Loader {
  return board.flashMaps.shim ? 'shim' : 'vendor';
}

/** Bytes of a legacy U-Boot image header in front of the kernel in the kernel partition. */
export const UIMAGE_HEADER_SIZE = 64;

/**
 * A board with one loader chosen: its partition map, and where the kernel
 * executes (CONFIG_XIP_PHYS_ADDR), which follows from the map.
 */
export type Board = BoardData & {
  loader: Loader;
  partitions: Partition[];
  /** Physical address of the kernel image in flash (CONFIG_XIP_PHYS_ADDR). */
  xipPhys: number;
};

export const KSEG0 = 0x80000000;
export const KSEG1 = 0xa0000000;

/** KSEG0 virtual address of a physical address, as an unsigned 32-bit number. */
export function kseg0(phys: number): number {
  return (KSEG0 + phys) >>> 0;
}

/** Physical address of a KSEG0 virtual address (a kernel link address), as an unsigned 32-bit number. */
export function physOfKseg0(virt: number): number {
  return (virt - KSEG0) >>> 0;
}

/** The GNU triple of the board's cross tools: CROSS_COMPILE without its trailing dash (mipsel-linux-gnu- -> mipsel-linux-gnu). */
export function crossTriple(board: Pick<BoardData, 'crossCompile'>): string {
  return board.crossCompile.replace(/-$/, '');
}

/** Where Debian's cross packages put the target's headers (the UAPI headers among them): /usr/<triple>/include. */
export function crossIncludeDir(board: Pick<BoardData, 'crossCompile'>): string {
  return `/usr/${crossTriple(board)}/include`;
}

/** The RAM total (KiB) the kernel reports when it is given memMiB. */
export function kernelTotalKiB(board: BoardData, memMiB: number): number {
  return memMiB * 1024 - (board.ramTopUnusedKiB ?? 0);
}

/** The partition of a map that holds `content` (the first one). */
export function partitionOf(parts: readonly Partition[], content: Partition['content']): Partition | undefined {
  return parts.find((p) => p.content === content);
}
