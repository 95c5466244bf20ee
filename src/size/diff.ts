import { sumBy, withObject } from './tree.ts';
import type { SizeNode, SizeReport } from './types.ts';

/**
 * What changed between two builds, the way scripts/bloat-o-meter answers
 * it for symbols, and also for regions, subsystems and root filesystem
 * files: each level sums to the same totals, so a growth can be followed
 * from the flash total down to the function that grew.
 */
export interface Delta {
  name: string;
  a: number;
  b: number;
  delta: number;
}

export interface SymbolChanges {
  added: number;
  removed: number;
  grown: number;
  shrunk: number;
  up: number;
  down: number;
  /** Largest growths first (added symbols included). */
  grew: Delta[];
  /** Largest shrinks first (removed symbols included). */
  shrank: Delta[];
}

export interface SizeDiff {
  a: string;
  b: string;
  /** Flash in use (everything but free space); undefined when either build has no flash image. */
  flashUsed?: Delta;
  ram: Delta;
  flashRegions: Delta[];
  ramRegions: Delta[];
  /** Kernel subsystems, flash and RAM each. */
  flashSubsystems: Delta[];
  ramSubsystems: Delta[];
  flashSymbols: SymbolChanges;
  ramSymbols: SymbolChanges;
  /** Files of the root filesystem (initramfs or cramfs), by flash bytes. */
  files: Delta[];
}

/** A short name for a build: config, variant, toolchain, userspace. */
export function buildLabel(r: SizeReport): string {
  const b = r.build;
  return `${b.config.replace(/_defconfig$/, '')} ${b.variant}-${b.toolchain}${b.userspace ? ` (${b.userspace})` : ''}`;
}

export function flashUsedOf(r: SizeReport): number | undefined {
  if (!r.flash) return undefined;
  return (r.flash.children ?? []).filter((c) => c.kind !== 'free').reduce((n, c) => n + c.bytes, 0);
}

/** A key sumBy drops: free space is not a subsystem. */
const FREE = '\0free';

function deltas(a: Map<string, number>, b: Map<string, number>): Delta[] {
  const names = new Set([...a.keys(), ...b.keys()].filter((k) => k !== FREE));
  return [...names]
    .map((name) => ({ name, a: a.get(name) ?? 0, b: b.get(name) ?? 0, delta: (b.get(name) ?? 0) - (a.get(name) ?? 0) }))
    .sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || x.name.localeCompare(y.name));
}

const regions = (root: SizeNode | undefined) => sumBy(root, (n) => n.name);
/** Kernel subsystems; a region that is not kernel code (the shim, a root filesystem) counts as one, so the list adds up to the bytes in use. */
const subsystems = (root: SizeNode | undefined) =>
  sumBy(root, (n) => {
    if (n.kind === 'free') return FREE;
    if (n.kind === 'subsystem' || !n.children) return n.name;
    if (n.kind === 'region' && !n.children.some((c) => c.kind === 'subsystem')) return n.name;
    return undefined;
  });
/**
 * The name a symbol is compared by. The number a compiler appends to a static (gcc's `buf.2`,
 * `foo.constprop.0`) is dropped, as bloat-o-meter does, so a renumbering
 * is not a removal and an addition; so are the counter and line number in
 * an initcall's name and the counter of a __UNIQUE_ID.
 */
export function symbolKey(name: string): string {
  return name
    .replace(/\.\d+$/, '')
    .replace(/^(__initcall__kmod_\w+?__)\d+_\d+_/, '$1')
    .replace(/^(__UNIQUE_ID_\w*?)\d+$/, '$1');
}

/** Symbols by name and object: the same static name in two files stays two symbols. */
const symbols = (root: SizeNode | undefined) =>
  sumBy(root, (n, path) => (n.kind === 'symbol' ? withObject(symbolKey(n.name), path) : undefined));
const files = (root: SizeNode | undefined) => sumBy(root, (n) => (n.kind === 'file' ? n.name : undefined));

function symbolChanges(a: Map<string, number>, b: Map<string, number>, top: number): SymbolChanges {
  const all = deltas(a, b).filter((d) => d.delta !== 0);
  const grew = all.filter((d) => d.delta > 0);
  const shrank = all.filter((d) => d.delta < 0);
  return {
    added: grew.filter((d) => !a.has(d.name)).length,
    removed: shrank.filter((d) => !b.has(d.name)).length,
    grown: grew.filter((d) => a.has(d.name)).length,
    shrunk: shrank.filter((d) => b.has(d.name)).length,
    up: grew.reduce((n, d) => n + d.delta, 0),
    down: shrank.reduce((n, d) => n + d.delta, 0),
    grew: grew.slice(0, top),
    shrank: shrank.slice(0, top),
  };
}

export function diffSizes(a: SizeReport, b: SizeReport, top = 20): SizeDiff {
  const fa = flashUsedOf(a);
  const fb = flashUsedOf(b);
  return {
    a: buildLabel(a),
    b: buildLabel(b),
    ...(fa !== undefined && fb !== undefined ? { flashUsed: { name: 'flash used', a: fa, b: fb, delta: fb - fa } } : {}),
    ram: { name: 'RAM (static)', a: a.ram.bytes, b: b.ram.bytes, delta: b.ram.bytes - a.ram.bytes },
    flashRegions: deltas(regions(a.flash), regions(b.flash)),
    ramRegions: deltas(regions(a.ram), regions(b.ram)),
    flashSubsystems: deltas(subsystems(a.flash), subsystems(b.flash)),
    ramSubsystems: deltas(subsystems(a.ram), subsystems(b.ram)),
    flashSymbols: symbolChanges(symbols(a.flash), symbols(b.flash), top),
    ramSymbols: symbolChanges(symbols(a.ram), symbols(b.ram), top),
    files: deltas(files(a.flash), files(b.flash)),
  };
}

/** The limit --max-growth checks: what grew by more than `max` bytes (flash in use, static RAM). */
export function overGrowth(d: SizeDiff, max: number): string[] {
  const out: string[] = [];
  if (d.flashUsed && d.flashUsed.delta > max) out.push(`flash in use grew by ${d.flashUsed.delta} bytes`);
  if (d.ram.delta > max) out.push(`static RAM grew by ${d.ram.delta} bytes`);
  return out;
}
