/**
 * The device tree an XIP kernel with its root file system in flash boots
 * with, made from the board's own (QEMU malta's: arch/mips/boot/dts/mti/
 * malta.dts). The kernel runs in place from the CFI chip, so no CFI driver
 * may probe that chip (it would switch it out of read-array mode under the
 * running kernel): its node stays, disabled. The part of the chip that
 * holds the kernel and the root file system becomes an "mtd-rom" region
 * (physmap's map_rom: plain reads, no commands) with read-only fixed
 * partitions the kernel mounts from. A writable region (the router's
 * settings) becomes a "cfi-flash" map of its own: the CFI driver writes it
 * from RAM with interrupts off (MTD_XIP, series patch 15), and it is a
 * separate MTD device because a CFI chip whose MTD device is pointed (as
 * cramfs points its root) refuses writes.
 */

import { badInput } from '../errors.ts';
import { findNode, getU32s, parseFdt, propString, propStrings, propU32, serializeFdt, type FdtNode, hexWide } from './fdt.ts';

export interface XipDeviceTreeOptions {
  /** The kernel command line (/chosen/bootargs). */
  bootargs: string;
  /** The CFI chip the kernel executes from: its node (disabled here), physical base and bus width in bytes. */
  flash: { nodePath: string; base: number; bankWidth: number };
  /** The region of the chip mapped as ROM: MTD name, offset and size in the chip, partitions relative to the region. */
  rom: MapRegion;
  /** A region the kernel writes through the CFI driver (MTD_XIP), its partitions writable. */
  cfi?: MapRegion;
}

/** A region of the chip with its own map: MTD name, offset and size in the chip, partitions relative to the region. */
export interface MapRegion {
  name: string;
  offset: number;
  size: number;
  partitions: Array<{ label: string; offset: number; size: number }>;
}

const h = hexWide;
/** Node names as the devicetree specification allows them (2.2.1): 1 to 31 of these characters. */
const NODE_NAME = /^[A-Za-z0-9,._+-]{1,31}$/;

const node = (name: string, props: Array<[string, Uint8Array]>, children: FdtNode[] = []): FdtNode => ({ name, props: new Map(props), children });

/** `n` as `cells` 32-bit cells (1 or 2), high cell first. */
function cellsOf(n: number, cells: number, what: string): number[] {
  if (cells === 1) {
    if (n > 0xffffffff) throw badInput(`${what} ${h(n)} does not fit the root node's one address/size cell`);
    return [n];
  }
  return [Math.floor(n / 0x100000000), n % 0x100000000];
}

/** The root's #address-cells or #size-cells (the specification's defaults 2 and 1 when absent); 1 or 2 are supported. */
function rootCells(root: FdtNode, name: '#address-cells' | '#size-cells'): number {
  const v = getU32s(root, name);
  const n = v === undefined ? (name === '#address-cells' ? 2 : 1) : v.length === 1 ? v[0]! : -1;
  if (n !== 1 && n !== 2) throw badInput(`device tree root: ${name} is ${v?.join(' ') ?? '?'}; only 1 or 2 cells are supported`);
  return n;
}

/** `reg` of a node under the root as (address, size) pairs, read with the root's cell counts; undefined when it has none or a malformed one. */
export function regOf(root: FdtNode, n: FdtNode): Array<[number, number]> | undefined {
  return rootReg(n, rootCells(root, '#address-cells'), rootCells(root, '#size-cells'));
}

/** `reg` of a node under the root as (address, size) pairs, or undefined. */
function rootReg(n: FdtNode, ac: number, sc: number): Array<[number, number]> | undefined {
  const v = getU32s(n, 'reg');
  if (v === undefined || v.length % (ac + sc) !== 0) return undefined;
  const num = (c: number[]) => c.reduce((x, w) => x * 0x100000000 + w, 0);
  return Array.from({ length: v.length / (ac + sc) }, (_, i) => {
    const e = v.slice(i * (ac + sc), (i + 1) * (ac + sc));
    return [num(e.slice(0, ac)), num(e.slice(ac))];
  });
}

function checkWhole(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw badInput(`${what} ${n} is not a non-negative integer`);
}

/**
 * The board's DTB (`base`) made into the XIP kernel's: /chosen/bootargs
 * set, the flash node at `flash.nodePath` disabled, and a root node
 * `rom@<address>` (compatible "mtd-rom", bank-width, linux,mtd-name) with a
 * "fixed-partitions" child holding one read-only partition per entry.
 * Throws XipError (exit code 2) naming the node or partition that is wrong.
 */
export function xipDeviceTree(base: Uint8Array, opts: XipDeviceTreeOptions): Uint8Array {
  const fdt = parseFdt(base);
  const root = fdt.root;
  const { flash, rom } = opts;

  let chosen = findNode(root, '/chosen');
  if (!chosen) root.children.push((chosen = node('chosen', [])));
  chosen.props.set('bootargs', propString(opts.bootargs));

  const flashNode = flash.nodePath === '/' ? undefined : findNode(root, flash.nodePath);
  if (!flashNode) throw badInput(`device tree has no flash node ${flash.nodePath}: give the path of the CFI chip the kernel runs from (malta: /flash@1e000000)`);
  flashNode.props.set('status', propString('disabled'));

  const ac = rootCells(root, '#address-cells');
  const sc = rootCells(root, '#size-cells');
  checkWhole(flash.base, 'flash base');
  if (![1, 2, 4, 8].includes(flash.bankWidth)) throw badInput(`flash bank width ${flash.bankWidth}: it is the bus width in bytes, 1, 2, 4 or 8 (malta: 4)`);
  // The flash node's reg is in the root's cells when it sits under the root, as on malta.
  const reg = root.children.includes(flashNode) ? rootReg(flashNode, ac, sc) : undefined;
  const maps: Array<[string, MapRegion, boolean]> = [['rom', rom, true]];
  if (opts.cfi) maps.push(['cfi', opts.cfi, false]);
  for (const [kind, region] of maps) checkRegion(kind, region, flash, reg);
  if (opts.cfi && opts.cfi.offset < rom.offset + rom.size && rom.offset < opts.cfi.offset + opts.cfi.size) {
    throw badInput(`cfi region '${opts.cfi.name}' overlaps rom region '${rom.name}': the writable part of the chip needs a map of its own`);
  }
  for (const [kind, region, readOnly] of maps) {
    const address = flash.base + region.offset;
    const mapNode = node(
      `${kind === 'rom' ? 'rom' : 'flash'}@${address.toString(16)}`,
      [
        ['compatible', propString(kind === 'rom' ? 'mtd-rom' : 'cfi-flash')],
        ['reg', propU32(...cellsOf(address, ac, `${kind} address`), ...cellsOf(region.size, sc, `${kind} size`))],
        ['bank-width', propU32(flash.bankWidth)],
        ['linux,mtd-name', propString(region.name)],
      ],
      [
        node(
          'partitions',
          [
            ['compatible', propStrings(['fixed-partitions'])],
            ['#address-cells', propU32(1)],
            ['#size-cells', propU32(1)],
          ],
          [...region.partitions]
            .sort((a, b) => a.offset - b.offset)
            .map((p) =>
              node(`${p.label}@${p.offset.toString(16)}`, [
                ['label', propString(p.label)],
                ['reg', propU32(p.offset, p.size)],
                ...(readOnly ? [['read-only', new Uint8Array(0)] as [string, Uint8Array]] : []),
              ]),
            ),
        ),
      ],
    );
    const at = root.children.findIndex((c) => c.name === mapNode.name);
    if (at >= 0) root.children[at] = mapNode;
    else root.children.push(mapNode);
  }
  return serializeFdt(fdt);
}

/** A map region's bounds, inside the flash node, and its partitions: whole, inside it, not overlapping. */
function checkRegion(kind: string, region: MapRegion, flash: XipDeviceTreeOptions['flash'], reg: Array<[number, number]> | undefined): void {
  const name = `${kind} region '${region.name}'`;
  checkWhole(region.offset, `${name} offset`);
  checkWhole(region.size, `${name} size`);
  if (region.size === 0) throw badInput(`${name} is empty: give it a size`);
  const address = flash.base + region.offset;
  if (reg && !reg.some(([a, s]) => address >= a && address + region.size <= a + s)) {
    throw badInput(`${name} (${h(address)}+${h(region.size)}) is not inside flash node ${flash.nodePath} (reg ${reg.map(([a, s]) => `${h(a)}+${h(s)}`).join(', ')}): check the flash base and the region's offset and size`);
  }
  const parts = [...region.partitions].sort((a, b) => a.offset - b.offset);
  let end = 0;
  let prev = '';
  for (const p of parts) {
    const what = `partition '${p.label}'`;
    if (!NODE_NAME.test(p.label)) throw badInput(`${what}: a label must be 1 to 31 letters, digits or ,._+- to name its device tree node`);
    checkWhole(p.offset, `${what} offset`);
    checkWhole(p.size, `${what} size`);
    if (p.size === 0) throw badInput(`${what} is empty: give it a size`);
    if (p.offset + p.size > region.size) throw badInput(`${what} (${h(p.offset)}+${h(p.size)}) ends ${p.offset + p.size - region.size} bytes past the ${h(region.size)}-byte ${name}: shrink or move it`);
    if (p.offset < end) throw badInput(`${what} at ${h(p.offset)} overlaps partition '${prev}' (ends at ${h(end)}): partitions must not overlap`);
    end = p.offset + p.size;
    prev = p.label;
  }
}
