import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { readElf } from '../elf/elf32.ts';
import { badInput, firstLine } from '../errors.ts';
import type { ImageReport } from '../image/index.ts';
import { SHF, SHT } from '../elf/elf32.ts';
import { attributeRange, rodataWeights, shareUnnamed, indexObjects, kernelSymbols, loadPhys, node, type PlacedSymbol, ramSections, type Span } from './kernel.ts';
import type { SizeBuild, SizeNode, SizeReport } from './types.ts';
import { hex } from '../text.ts';

/** Image regions built from vmlinux's own bytes: attributed symbol by symbol. */
const KERNEL_REGIONS = new Set(['kernel text', 'rodata + tables', 'init code + tables', 'init (rest)', 'data image (to RAM)']);

/** Sections that RAM gives back after boot (free_initmem). */
const FREED_AFTER_BOOT = /^\.init\./;

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw badInput(`${path}: unreadable (${firstLine(err)}); rebuild (xip build)`);
  }
}

interface BuildInfo {
  board: string;
  config: string;
  variant: string;
  toolchain: string;
  kernelVersion?: string;
}

/** The build a variant directory holds, from the build-info.json the kernel stage writes. */
function buildOf(dir: string): SizeBuild {
  const infoPath = join(dir, 'build-info.json');
  if (!existsSync(infoPath)) throw badInput(`${dir}: not a build directory (no build-info.json); give a build/<board>/<config>/<variant>-<toolchain> directory or a file from xip size --json`);
  const info = readJson<BuildInfo>(infoPath);
  const prefix = `${info.variant}-${info.toolchain}-`;
  const name = basename(dir);
  const userspace = name.startsWith(prefix) ? name.slice(prefix.length).replace(/-(uboot|uboot-stock|map-[0-9a-f]+)$/, '') : undefined;
  return {
    dir,
    board: info.board,
    config: info.config,
    variant: info.variant,
    toolchain: info.toolchain,
    ...(userspace ? { userspace } : {}),
    ...(info.kernelVersion ? { kernelVersion: info.kernelVersion } : {}),
  };
}

/** One line of a gen_init_cpio list the userspace stage wrote: what goes into the initramfs. */
function initramfsFiles(dir: string): { path: string; src?: string }[] {
  const list = join(dir, 'userspace', 'initramfs.list');
  if (!existsSync(list)) return [];
  const out: { path: string; src?: string }[] = [];
  for (const line of readFileSync(list, 'utf8').split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'file' && w[1] && w[2]) out.push({ path: w[1], src: w[2] });
    else if ((w[0] === 'dir' || w[0] === 'slink' || w[0] === 'nod') && w[1]) out.push({ path: w[1] });
  }
  return out;
}

/**
 * The initramfs in flash is one gzip stream, so a file's share of it can
 * only be estimated: each file compressed alone (plus its cpio header),
 * scaled so the shares add up to the region. Marked estimated.
 */
function initramfsNode(name: string, bytes: number, dir: string): SizeNode {
  const entries = initramfsFiles(dir);
  const CPIO_HEADER = 110;
  const raw = entries.map((e) => {
    const data = e.src && existsSync(e.src) ? readFileSync(e.src) : undefined;
    return { path: e.path, size: data?.length ?? 0, cost: CPIO_HEADER + e.path.length + (data ? deflateRawSync(data, { level: 9 }).length : 0) };
  });
  const total = raw.reduce((n, r) => n + r.cost, 0);
  if (total === 0) return { name, bytes, kind: 'region' };
  const files = raw.filter((r) => r.size > 0);
  const children: SizeNode[] = [];
  let given = 0;
  for (const f of files) {
    // Rounded down, so the shares never pass the region and the rest node stays >= 0.
    const share = Math.floor((f.cost / total) * bytes);
    given += share;
    children.push({ name: f.path, bytes: share, kind: 'file', estimated: true, note: `${f.size} B uncompressed` });
  }
  children.push({ name: '(cpio headers, directories, links, gzip)', bytes: bytes - given, kind: 'other', estimated: true });
  const n = node(name, 'region', children.filter((c) => c.bytes > 0));
  n.note = 'one gzip stream: per-file shares are estimates (each file compressed alone, scaled to the region)';
  return n;
}

interface CramfsFile {
  path: string;
  size: number;
  blocks: number;
  compressedBytes: number;
  xipBytes: number;
}

/** A cramfs root in flash, file by file: compressed blocks, pages stored in place, the block pointers. */
function cramfsNode(name: string, bytes: number, dir: string): SizeNode {
  const list = join(dir, 'userspace', 'rootfs-files.json');
  if (!existsSync(list)) return { name, bytes, kind: 'region' };
  const files = readJson<CramfsFile[]>(list);
  const children: SizeNode[] = files
    .filter((f) => f.blocks > 0)
    .map((f) => ({
      name: f.path,
      bytes: f.compressedBytes + f.xipBytes + 4 * f.blocks,
      kind: 'file' as const,
      xipBytes: f.xipBytes,
      note: `${f.size} B; in place (XIP) ${f.xipBytes} B, compressed ${f.compressedBytes} B, block pointers ${4 * f.blocks} B`,
    }));
  const used = children.reduce((n, c) => n + c.bytes, 0);
  children.push({ name: '(superblock, inodes, names, alignment)', bytes: Math.max(0, bytes - used), kind: 'other' });
  return node(name, 'region', children.filter((c) => c.bytes > 0));
}

/** The size report of the build the options name, with the fix when it is not built yet. */
export function sizeOfBuiltDir(dir: string): SizeReport {
  if (!existsSync(join(dir, 'build-info.json'))) throw badInput(`${dir}: not built yet; build it with the same options first (xip build, then xip image)`);
  return sizeOfBuild(dir);
}

/**
 * The size report of one build directory: the flash chip region by region
 * (the image's own layout map), each kernel region down to symbols, root
 * filesystems down to files; and the kernel's static RAM section by section
 * down to symbols.
 */
export function sizeOfBuild(dir: string): SizeReport {
  const build = buildOf(dir);
  const vmlinux = join(dir, 'kbuild', 'vmlinux');
  if (!existsSync(vmlinux)) throw badInput(`${vmlinux} missing: build the kernel first (xip build)`);
  const elf = readElf(vmlinux);
  const index = indexObjects(join(dir, 'kbuild'));
  const syms = kernelSymbols(elf, index);
  const reportPath = join(dir, 'image-report.json');
  const image = existsSync(reportPath) ? readJson<ImageReport>(reportPath) : undefined;
  if (!image && build.variant === 'xip') throw badInput(`${dir}: no image report, so no flash map to attribute the kernel's flash to; assemble the image first (xip image)`);
  if (image && (!Array.isArray(image.layout?.regions) || typeof image.size !== 'number')) throw badInput(`${reportPath}: not an image report of this toolkit; assemble the image again (xip image)`);
  if (image && image.kernelEntry !== elf.entry) throw badInput(`${reportPath}: made for another vmlinux (entry ${hex(image.kernelEntry)}, vmlinux ${hex(elf.entry)}); assemble the image again (xip image)`);
  // Only what made it into vmlinux gets a share of its unnamed .rodata (not code the linker dropped).
  const weights = rodataWeights(index, syms);

  let flash: SizeNode | undefined;
  let window: { phys: number; size: number } | undefined;
  if (image) {
    const regions = image.layout.regions;
    window = { phys: Math.min(...regions.map((r) => r.start)), size: image.size };
    const spans: Span[] = [];
    for (const sec of elf.sections) {
      const phys = (sec.flags & SHF.ALLOC) !== 0 && sec.type !== SHT.NOBITS ? loadPhys(elf, sec.addr) : undefined;
      if (phys !== undefined && sec.size > 0) spans.push({ name: sec.name, start: phys, end: phys + sec.size });
    }
    const placed: PlacedSymbol[] = [];
    for (const { sym, obj, label, room } of syms) {
      const phys = loadPhys(elf, sym.value);
      if (phys !== undefined) placed.push({ name: sym.name, addr: phys, size: sym.size, obj, label, room });
    }
    const children: SizeNode[] = [];
    let at = window.phys;
    for (const r of [...regions].sort((a, b) => a.start - b.start)) {
      if (r.start > at) children.push({ name: '(alignment between regions)', bytes: r.start - at, kind: 'other' });
      at = Math.max(at, r.end);
      children.push(flashRegion(r));
    }
    if (window.phys + window.size > at) children.push({ name: 'free', bytes: window.phys + window.size - at, kind: 'free' });
    function flashRegion(r: ImageReport['layout']['regions'][number]): SizeNode {
      if (KERNEL_REGIONS.has(r.name)) return shareUnnamed(attributeRange(r.name, r.start, r.end, placed, spans), '.rodata', weights);
      if (r.name === 'initramfs') return initramfsNode(r.name, r.size, dir);
      if (r.name.startsWith('root filesystem')) return cramfsNode(r.name, r.size, dir);
      if (r.name === 'data image (deflated)') return { name: r.name, bytes: r.size, kind: 'region', note: 'one deflate stream of .data: see the RAM treemap for what is in it' };
      return { name: r.name, bytes: r.size, kind: r.name === 'free' ? 'free' : 'region' };
    }
    // Regions keep the chip's order (the image map), not size order.
    flash = { name: 'flash', kind: 'total', bytes: children.reduce((n, c) => n + c.bytes, 0), children: mergeSame(mergeFree(children)) };
  }

  const ramPlaced: PlacedSymbol[] = syms.map(({ sym, obj, label, room }) => ({ name: sym.name, addr: sym.value >>> 0, size: sym.size, obj, label, room }));
  const sections = ramSections(elf, window).sort((a, b) => a.addr - b.addr);
  const ramChildren: SizeNode[] = [];
  let end: number | undefined;
  for (const s of sections) {
    if (end !== undefined && s.addr > end) ramChildren.push({ name: '(alignment between sections)', bytes: s.addr - end, kind: 'other' });
    const r = shareUnnamed(attributeRange(s.name, s.addr, s.addr + s.size, ramPlaced, [{ name: s.name, start: s.addr, end: s.addr + s.size }]), '.rodata', weights);
    if (FREED_AFTER_BOOT.test(s.name)) r.note = 'given back to the page allocator after boot';
    ramChildren.push(r);
    end = Math.max(end ?? 0, s.addr + s.size);
  }
  const ram: SizeNode = { name: 'RAM', kind: 'total', bytes: ramChildren.reduce((n, c) => n + c.bytes, 0), children: mergeSame(ramChildren) };
  return { schema: 1, build, ...(flash ? { flash } : {}), ram };
}

/** The free pieces of the chip as one 'free' node, so the treemap shows one block of free space. */
function mergeFree(children: SizeNode[]): SizeNode[] {
  const free = children.filter((c) => c.kind === 'free');
  const rest = children.filter((c) => c.kind !== 'free');
  const bytes = free.reduce((n, c) => n + c.bytes, 0);
  return bytes > 0 ? [...rest, { name: 'free', bytes, kind: 'free' }] : rest;
}

/** Gaps of the same name summed into one node. */
function mergeSame(children: SizeNode[]): SizeNode[] {
  const out: SizeNode[] = [];
  for (const c of children) {
    const same = c.kind === 'other' && !c.children ? out.find((o) => o.name === c.name && o.kind === 'other') : undefined;
    if (same) same.bytes += c.bytes;
    else out.push(c);
  }
  return out;
}
