/**
 * Where the flash and the RAM of one build go, as a tree: the root is the
 * whole budget (flash) or the kernel's static RAM, its children the regions
 * (the image map's regions for flash, the vmlinux sections that live in RAM
 * for RAM), then subsystems (arch/mips/kernel, mm, drivers/mtd, ...), object
 * files, and symbols. Every node's bytes are the sum of its children's, so a
 * level always adds up to the region above it: what cannot be attributed is
 * a node of its own ("(no symbol)", "(padding)"), never left out.
 */
export interface SizeNode {
  name: string;
  bytes: number;
  /** What the node is: drives the colour in the treemap and the diff's grouping. */
  kind: SizeKind;
  children?: SizeNode[];
  /** Set when the node's bytes are an estimate (e.g. a file's share of a gzip archive). */
  estimated?: boolean;
  /** A file of a cramfs root: of its bytes, those stored uncompressed for executing in place. */
  xipBytes?: number;
  /** Extra facts shown on hover (e.g. "XIP 393216 B, compressed 12288 B"). */
  note?: string;
}

export type SizeKind = 'total' | 'region' | 'subsystem' | 'object' | 'symbol' | 'file' | 'other' | 'free';

/** The build a size report describes. */
export interface SizeBuild {
  /** The variant directory (build/<board>/<config>/<variant>-<toolchain>[-<userspace>]). */
  dir: string;
  board: string;
  config: string;
  variant: string;
  toolchain: string;
  userspace?: string;
  kernelVersion?: string;
}

export interface SizeReport {
  schema: 1;
  build: SizeBuild;
  /** The whole chip: image regions; free space as kind 'free'. Absent for a build without a flash image (stock). */
  flash?: SizeNode;
  /** The kernel's static RAM: the vmlinux sections that live in RAM. */
  ram: SizeNode;
}
