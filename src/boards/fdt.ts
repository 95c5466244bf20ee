/**
 * Flattened device trees (DTB), as the devicetree specification (chapter 5)
 * and libfdt's fdt.h define them: a 40-byte header of big-endian words, the
 * memory reservation block (pairs of 64-bit address and size ending in a
 * zero pair), the structure block (BEGIN_NODE name, PROP len nameoff value,
 * END_NODE, ..., END, each token on a 4-byte boundary) and the strings block
 * the properties name themselves from. Read as version 16 or 17, written as
 * version 17 in the order dtc lays it out.
 */

import { badInput } from '../errors.ts';

/** One node: its name with the unit address ('flash@1e000000'; the root's is ''), raw property values and children in order. */
export interface FdtNode {
  name: string;
  props: Map<string, Uint8Array>;
  children: FdtNode[];
}

/** A whole device tree: the root node, the header's boot CPU and the memory reservation block. */
export interface Fdt {
  root: FdtNode;
  bootCpuid: number;
  memReserve: Array<{ address: bigint; size: bigint }>;
}

const FDT_MAGIC = 0xd00dfeed;
const HEADER_SIZE = 40;
const RESERVE_ENTRY = 16;
const TOKEN = { beginNode: 1, endNode: 2, prop: 3, nop: 4, end: 9 } as const;
const VERSION = 17;
const LAST_COMP_VERSION = 16;

const align4 = (n: number) => (n + 3) & ~3;
/** Hex of a device tree number (cells may make it wider than 32 bits, which text.ts' hex() truncates). */
export const hexWide = (n: number) => `0x${n.toString(16)}`;
const h = hexWide;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The text of a NUL-terminated string at `start`, which must end before `limit`, and where its NUL is. */
function cString(bytes: Uint8Array, start: number, limit: number, what: () => string): [text: string, nul: number] {
  const nul = bytes.subarray(0, limit).indexOf(0, start);
  if (nul < 0) throw badInput(`${what()} runs past the end of its block without a NUL`);
  try {
    return [utf8.decode(bytes.subarray(start, nul)), nul];
  } catch {
    throw badInput(`${what()} is not valid UTF-8`);
  }
}

/**
 * Parse a DTB. Every offset and size of the header is checked against the
 * blob before it is used; errors (XipError, exit code 2) say what is wrong
 * and where, prefixed with `source` (a file name, say).
 */
export function parseFdt(bytes: Uint8Array, source = 'device tree blob'): Fdt {
  const bad = (msg: string) => badInput(`${source}: ${msg}`);
  if (bytes.length < HEADER_SIZE) throw bad(`${bytes.length} bytes, shorter than the ${HEADER_SIZE}-byte FDT header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [magic, totalsize, offStruct, offStrings, offRsv, version, lastComp, bootCpuid, sizeStrings, sizeStruct] = Array.from({ length: 10 }, (_, i) => v.getUint32(i * 4));
  if (magic !== FDT_MAGIC) throw bad(`magic ${h(magic!)}, not a flattened device tree (${h(FDT_MAGIC)})`);
  if (version! < 16) throw bad(`FDT version ${version}: only versions 16 and 17 are read (recompile it with a current dtc)`);
  if (lastComp! > VERSION) throw bad(`last compatible version ${lastComp}: this reader knows version ${VERSION} and older`);
  if (totalsize! > bytes.length) throw bad(`totalsize ${totalsize} but only ${bytes.length} bytes: truncated`);
  const headerEnd = version! >= 17 ? HEADER_SIZE : HEADER_SIZE - 4;
  const block = (name: string, off: number, size: number, align: number) => {
    if (off % align !== 0) throw bad(`${name} at ${h(off)} is not ${align}-byte aligned`);
    if (off < headerEnd || off > totalsize! || off + size > totalsize!) throw bad(`${name} (${h(off)}+${h(size)}) lies outside the blob (header ${headerEnd} bytes, totalsize ${h(totalsize!)})`);
  };
  block('memory reservation block', offRsv!, RESERVE_ENTRY, 8);
  block('strings block', offStrings!, sizeStrings!, 1);
  // Version 16 has no size_dt_struct: the structure block ends at the latest where the blob does.
  const structEnd = version! >= 17 ? offStruct! + sizeStruct! : totalsize!;
  block('structure block', offStruct!, structEnd - offStruct!, 4);

  const memReserve: Fdt['memReserve'] = [];
  for (let p = offRsv!; ; p += RESERVE_ENTRY) {
    if (p + RESERVE_ENTRY > totalsize!) throw bad('memory reservation block has no terminating zero entry');
    const address = v.getBigUint64(p);
    const size = v.getBigUint64(p + 8);
    if (address === 0n && size === 0n) break;
    memReserve.push({ address, size });
  }

  const strEnd = offStrings! + sizeStrings!;
  const propName = (nameoff: number, at: number) => {
    if (nameoff >= sizeStrings!) throw bad(`property at ${h(at)}: name offset ${h(nameoff)} is past the ${h(sizeStrings!)}-byte strings block`);
    return cString(bytes, offStrings! + nameoff, strEnd, () => `${source}: property name at strings offset ${h(nameoff)}`)[0];
  };
  let p = offStruct!;
  const word = () => {
    if (p + 4 > structEnd) throw bad(`structure block ends at ${h(structEnd)} inside a token (missing FDT_END?)`);
    const w = v.getUint32(p);
    p += 4;
    return w;
  };
  const token = () => {
    let t = word();
    while (t === TOKEN.nop) t = word();
    return t;
  };

  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    const at = p;
    const t = token();
    if (t === TOKEN.beginNode) {
      const [name, nul] = cString(bytes, p, structEnd, () => `${source}: node name at ${h(p)}`);
      p = align4(nul + 1);
      const node: FdtNode = { name, props: new Map(), children: [] };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(node);
      else if (root) throw bad(`a second top-level node '${name}' at ${h(at)}: a tree has one root`);
      else if (name !== '') throw bad(`the root node is named '${name}', not '' (a version < 16 blob?)`);
      else root = node;
      stack.push(node);
    } else if (t === TOKEN.prop) {
      const node = stack[stack.length - 1];
      if (!node) throw bad(`property at ${h(at)} outside any node`);
      const len = word();
      const name = propName(word(), at);
      if (p + len > structEnd) throw bad(`property '${name}' at ${h(at)}: its ${len} bytes run past the structure block`);
      if (node.props.has(name)) throw bad(`node '${node.name}' has property '${name}' twice`);
      node.props.set(name, new Uint8Array(bytes.subarray(p, p + len)));
      p = align4(p + len);
    } else if (t === TOKEN.endNode) {
      if (!stack.pop()) throw bad(`FDT_END_NODE at ${h(at)} without a node to end`);
    } else if (t === TOKEN.end) {
      if (stack.length > 0) throw bad(`FDT_END at ${h(at)} inside node '${stack[stack.length - 1]!.name}'`);
      if (!root) throw bad('the structure block holds no root node');
      return { root, bootCpuid: bootCpuid!, memReserve };
    } else {
      throw bad(`unknown token ${h(t)} at ${h(at)} in the structure block`);
    }
  }
}

/**
 * The DTB of a tree: version 17 (last compatible 16), the memory
 * reservation block right after the header, then the structure block, then
 * the strings block with each property name once, in first-use order.
 * The same tree always gives the same bytes.
 */
export function serializeFdt(fdt: Fdt): Uint8Array {
  if (fdt.root.name !== '') throw badInput(`serializeFdt: the root node is named '${fdt.root.name}', it must be ''`);
  const enc = new TextEncoder();
  const strings: number[] = [];
  const nameOff = new Map<string, number>();
  const words: number[] = [];
  const bytesOf = (s: string) => {
    const b = enc.encode(s);
    if (b.includes(0)) throw badInput(`serializeFdt: name '${s}' holds a NUL`);
    return b;
  };
  /** Append raw bytes to the structure block, zero-padded to 4. */
  const pushBytes = (b: Uint8Array) => {
    const padded = new Uint8Array(align4(b.length));
    padded.set(b);
    const dv = new DataView(padded.buffer);
    for (let i = 0; i < padded.length; i += 4) words.push(dv.getUint32(i));
  };
  /** Append a node; `parent` is its parent's path ('' for the root's own). */
  const walk = (node: FdtNode, parent: string | undefined) => {
    if (parent !== undefined && (node.name === '' || node.name.includes('/'))) throw badInput(`serializeFdt: a node under ${parent || '/'} is named '${node.name}': empty or with a '/'`);
    const path = parent === undefined ? '/' : `${parent}/${node.name}`;
    words.push(TOKEN.beginNode);
    pushBytes(new Uint8Array([...bytesOf(node.name), 0]));
    for (const [name, value] of node.props) {
      if (name === '') throw badInput(`serializeFdt: node ${path} has a property with an empty name`);
      let off = nameOff.get(name);
      if (off === undefined) {
        off = strings.length;
        nameOff.set(name, off);
        strings.push(...bytesOf(name), 0);
      }
      words.push(TOKEN.prop, value.length, off);
      pushBytes(value);
    }
    for (const c of node.children) walk(c, parent === undefined ? '' : path);
    words.push(TOKEN.endNode);
  };
  walk(fdt.root, undefined);
  words.push(TOKEN.end);

  const offRsv = HEADER_SIZE;
  const offStruct = offRsv + (fdt.memReserve.length + 1) * RESERVE_ENTRY;
  const offStrings = offStruct + words.length * 4;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  [FDT_MAGIC, total, offStruct, offStrings, offRsv, VERSION, LAST_COMP_VERSION, fdt.bootCpuid, strings.length, words.length * 4].forEach((w, i) => v.setUint32(i * 4, w));
  fdt.memReserve.forEach((r, i) => {
    v.setBigUint64(offRsv + i * RESERVE_ENTRY, r.address);
    v.setBigUint64(offRsv + i * RESERVE_ENTRY + 8, r.size);
  });
  words.forEach((w, i) => v.setUint32(offStruct + i * 4, w));
  out.set(strings, offStrings);
  return out;
}

/**
 * The node at an absolute path ('/', '/chosen', '/flash@1e000000/partitions'),
 * or undefined. A component without a unit address ('flash') matches the
 * one child of that name when there is exactly one.
 */
export function findNode(root: FdtNode, path: string): FdtNode | undefined {
  if (!path.startsWith('/')) return undefined;
  let node: FdtNode | undefined = root;
  for (const part of path.split('/').filter((s) => s !== '')) {
    const exact: FdtNode | undefined = node.children.find((c) => c.name === part);
    const loose: FdtNode[] = part.includes('@') ? [] : node.children.filter((c) => c.name.split('@')[0] === part);
    node = exact ?? (loose.length === 1 ? loose[0] : undefined);
    if (!node) return undefined;
  }
  return node;
}

/** A string property value: the UTF-8 text and its NUL. */
export function propString(s: string): Uint8Array {
  return propStrings([s]);
}

/** A string-list property value ('compatible'): each string NUL-terminated, one after the other. */
export function propStrings(list: readonly string[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = list.map((s) => {
    if (s.includes('\0')) throw badInput(`device tree string '${s.replace(/\0/g, '\\0')}' holds a NUL`);
    return enc.encode(`${s}\0`);
  });
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** A property value of 32-bit cells, big-endian (`<0x1e000000 0x400000>`); an empty one for no cells. */
export function propU32(...cells: number[]): Uint8Array {
  const out = new Uint8Array(cells.length * 4);
  const v = new DataView(out.buffer);
  cells.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c > 0xffffffff) throw badInput(`device tree cell ${c} is not a 32-bit unsigned integer`);
    v.setUint32(i * 4, c);
  });
  return out;
}

/** A property as 32-bit cells, or undefined when the node lacks it; throws when its length is not a multiple of 4. */
export function getU32s(node: FdtNode, name: string): number[] | undefined {
  const b = node.props.get(name);
  if (b === undefined) return undefined;
  if (b.length % 4 !== 0) throw badInput(`property '${name}' of node '${node.name}' is ${b.length} bytes, not whole 32-bit cells`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.length / 4 }, (_, i) => v.getUint32(i * 4));
}

/** A string-list property as strings, or undefined when the node lacks it; throws when it is not NUL-terminated UTF-8. */
export function getStrings(node: FdtNode, name: string): string[] | undefined {
  const b = node.props.get(name);
  if (b === undefined) return undefined;
  if (b.length === 0 || b[b.length - 1] !== 0) throw badInput(`property '${name}' of node '${node.name}' is not a NUL-terminated string`);
  try {
    return utf8.decode(b.subarray(0, b.length - 1)).split('\0');
  } catch {
    throw badInput(`property '${name}' of node '${node.name}' is not valid UTF-8`);
  }
}

/** A string property (the first string of a list), or undefined when the node lacks it. */
export function getString(node: FdtNode, name: string): string | undefined {
  return getStrings(node, name)?.[0];
}
