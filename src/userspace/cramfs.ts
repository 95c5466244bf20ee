/**
 * cramfs images for a root file system the kernel mounts from flash
 * (fs/cramfs: README, inode.c; include/uapi/linux/cramfs_fs.h), with chosen
 * pages of chosen files stored uncompressed and page-aligned, so that with
 * CONFIG_CRAMFS_MTD the kernel maps them straight from flash (XIP) instead
 * of decompressing them into RAM. mkcramfs() writes an image, readCramfs()
 * reads one back the way the kernel does (for the tests and the toolkit's
 * checks).
 *
 * The layout is util-linux mkfs.cramfs's, all words in the target's byte
 * order:
 *   superblock (76 bytes, ending with the root inode);
 *   directory structure: inodes (12 bytes) each followed by the name,
 *     NUL-padded to 4 bytes; each directory's children contiguous and
 *     sorted by name, the directory's offset pointing at the first; the
 *     directories depth first;
 *   data, depth first: for each regular file with data and each symlink,
 *     one block pointer per 4 KiB page, then the blocks, padded to 4 bytes.
 * XIP pages are page-aligned from the start of the image, so the kernel maps
 * them only if the image starts page-aligned in flash (cramfs_physmem_mmap
 * checks the physical address), and only with CRAMFS_FLAG_EXT_BLOCK_POINTERS
 * set (get_cramfs_inode), which mkcramfs sets when there are XIP pages.
 */

import { readFileSync, statSync } from 'node:fs';
import { deflateSync, inflateSync } from 'node:zlib';
import { badInput } from '../errors.ts';
import { crc32 } from '../image/uboot-formats.ts';
import type { InitramfsEntry, InitramfsFile } from './initramfs.ts';

/**
 * The block size: one page, what cramfs_read_folio decompresses at a time.
 * The kernel must have 4 KiB pages (the MIPS default, CONFIG_PAGE_SIZE_4KB).
 */
export const PAGE = 4096;

/** Superblock feature flags (cramfs_fs.h). */
export const CRAMFS_FLAGS = {
  fsidVersion2: 0x1,
  sortedDirs: 0x2,
  holes: 0x100,
  wrongSignature: 0x200,
  shiftedRootOffset: 0x400,
  extBlockPointers: 0x800,
} as const;
/** CRAMFS_SUPPORTED_FLAGS: the kernel refuses to mount with any other flag set. */
const SUPPORTED_FLAGS = 0xff | 0x100 | 0x200 | 0x400 | 0x800;

/** Block pointer flags (meaningful with extBlockPointers); the low 30 bits are the address. */
export const BLK_UNCOMPRESSED = 0x80000000;
export const BLK_DIRECT_PTR = 0x40000000;
const BLK_ADDR = 0x3fffffff;

const MAGIC = 0x28cd3d45;
const SIGNATURE = 'Compressed ROMFS';
const SUPER_BYTES = 76;
const ROOT_INODE_AT = 64;
const INODE_BYTES = 12;
/** CRAMFS_MAXPATHLEN: namelen is 6 bits counting 4-byte units. */
const MAX_NAME = 252;
/** The inode size field is 24 bits. */
const MAX_SIZE = (1 << 24) - 1;
/** The inode offset field is 26 bits counting 4-byte units: offsets below 256 MiB. */
const OFFSET_LIMIT = 1 << 28;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

export interface CramfsOptions {
  endian: 'little' | 'big';
  /** volume name, <=16 bytes */
  name?: string;
  /** which 4 KiB pages of a regular file are stored uncompressed, page-aligned, with direct pointers (XIP); default none */
  xipPages?: (imagePath: string, data: Uint8Array) => ReadonlySet<number> | readonly number[];
}

/** What mkcramfs stored for one regular file. */
export interface CramfsFileReport {
  path: string;
  size: number;
  blocks: number;
  /** The pages really stored XIP (a requested last page may be left out, see xipSet). */
  xipPages: number[];
  compressedBytes: number;
  /** Flash taken by the XIP pages: a whole page each. */
  xipBytes: number;
}

/** One file of the image being built. */
interface Node {
  path: string;
  /** The name in its directory, UTF-8. */
  name: Uint8Array;
  /** st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Directories: the entries, sorted by name once the tree is complete. */
  children?: Node[];
  /** Regular files: the contents; symlinks: the target. */
  data?: Uint8Array;
  /** The inode's size field: bytes of a file or target, of a directory's entries, or a device number. */
  size: number;
  /** Where the inode lies in the image. */
  inodeAt: number;
  /** The inode's offset field in bytes: a directory's first entry, a file's block pointers, or 0. */
  offset: number;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;

function hostFile(e: InitramfsFile): Uint8Array {
  let st;
  try {
    st = statSync(e.location);
  } catch (err) {
    const code = String((err as NodeJS.ErrnoException).code);
    throw badInput(`cramfs entry ${e.name}: cannot read ${e.location} (${code}); build it or fix the location`);
  }
  if (!st.isFile()) throw badInput(`cramfs entry ${e.name}: ${e.location} is not a regular file; point location at one`);
  if (st.size > MAX_SIZE) {
    throw badInput(
      `cramfs entry ${e.name}: ${e.location} has ${st.size} bytes, cramfs holds at most ${MAX_SIZE} (16 MiB - 1) per file; shrink it or leave it out`,
    );
  }
  return readFileSync(e.location);
}

/** The node of one entry, its fields checked against what the inode can hold. */
function entryNode(e: InitramfsEntry): Node {
  const what = `cramfs entry ${JSON.stringify(e.name)}`;
  const parts = typeof e.name === 'string' && e.name.startsWith('/') ? e.name.slice(1).split('/') : [];
  if (parts.length === 0 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw badInput(`${what}: name must be a plain absolute path below / (e.g. /bin/busybox)`);
  }
  const name = utf8(parts[parts.length - 1]!);
  if (name.length > MAX_NAME) {
    throw badInput(`${what}: the name is ${name.length} bytes, cramfs names hold at most ${MAX_NAME}; shorten it`);
  }
  const int = (field: string, v: number, max: number): void => {
    if (!Number.isInteger(v) || v < 0 || v > max) throw badInput(`${what}: ${field} ${String(v)} is not a whole number from 0 to ${max}`);
  };
  int('mode', e.mode, 0o7777);
  int('uid', e.uid, 0xffff); // 16-bit field
  int('gid', e.gid, 0xff); // 8-bit field
  const node: Node = { path: e.name, name, mode: e.mode, uid: e.uid, gid: e.gid, size: 0, inodeAt: 0, offset: 0 };
  switch (e.type) {
    case 'dir':
      return { ...node, mode: S_IFDIR | e.mode, children: [] };
    case 'file': {
      const data = hostFile(e);
      return { ...node, mode: S_IFREG | e.mode, data, size: data.length };
    }
    case 'slink': {
      // The kernel reads a link target as one page, NUL-terminated (page_get_link).
      const data = utf8(typeof e.target === 'string' ? e.target : '');
      if (data.length === 0 || data.length >= PAGE) throw badInput(`${what}: the link target must be 1 to ${PAGE - 1} bytes`);
      return { ...node, mode: S_IFLNK | e.mode, data, size: data.length };
    }
    case 'nod':
      if (e.devType !== 'c' && e.devType !== 'b') throw badInput(`${what}: device type must be 'c' (character) or 'b' (block)`);
      // The kernel decodes the size field with old_decode_dev: 8-bit major, 8-bit minor.
      int('major', e.major, 255);
      int('minor', e.minor, 255);
      return { ...node, mode: (e.devType === 'c' ? S_IFCHR : S_IFBLK) | e.mode, size: (e.major << 8) | e.minor };
    default:
      throw badInput(`${what}: unknown type ${String((e as { type: unknown }).type)}; use dir, file, slink or nod`);
  }
}

/** The tree of the entries under a root directory (0755); directories missing from the list are made (0755). */
function buildTree(entries: readonly InitramfsEntry[]): { root: Node; nodes: Node[] } {
  const root: Node = { path: '/', name: new Uint8Array(), mode: S_IFDIR | 0o755, uid: 0, gid: 0, children: [], size: 0, inodeAt: ROOT_INODE_AT, offset: 0 };
  const byPath = new Map<string, Node>([['/', root]]);
  const dir = (path: string, forEntry: string): Node => {
    const got = byPath.get(path);
    if (got !== undefined) {
      if (got.children === undefined) throw badInput(`cramfs entry ${JSON.stringify(forEntry)}: ${path} is not a directory; make it a dir entry`);
      return got;
    }
    const made = entryNode({ type: 'dir', name: path, mode: 0o755, uid: 0, gid: 0 });
    dir(path.slice(0, path.lastIndexOf('/')) || '/', forEntry).children!.push(made);
    byPath.set(path, made);
    return made;
  };
  // Shallower paths first: a listed directory is in place before anything in it.
  const depth = (e: InitramfsEntry): number => String(e.name).split('/').length;
  for (const e of [...entries].sort((a, b) => depth(a) - depth(b))) {
    const node = entryNode(e);
    if (byPath.has(e.name)) throw badInput(`cramfs entry ${JSON.stringify(e.name)}: listed twice; keep one`);
    dir(e.name.slice(0, e.name.lastIndexOf('/')) || '/', e.name).children!.push(node);
    byPath.set(e.name, node);
  }
  const nodes = [...byPath.values()];
  for (const n of nodes) n.children?.sort((a, b) => Buffer.compare(a.name, b.name));
  return { root, nodes };
}

function setOffset(node: Node, at: number): void {
  if (at >= OFFSET_LIMIT) {
    const what = node.children ? 'entries' : 'data';
    throw badInput(`cramfs: the ${what} of ${node.path} would start at byte ${at}, past the 256 MiB the 26-bit inode offset reaches; make the image smaller`);
  }
  node.offset = at;
}

/** Lays out `dir`'s entries at `pos`, then each non-empty subdirectory's, depth first; returns the end. */
function placeDir(dir: Node, pos: number): number {
  const kids = dir.children!;
  const start = pos;
  if (kids.length > 0) setOffset(dir, start); // an empty directory keeps offset 0
  for (const c of kids) {
    c.inodeAt = pos;
    pos += INODE_BYTES + alignUp(c.name.length, 4);
  }
  dir.size = pos - start;
  if (dir.size > MAX_SIZE) {
    throw badInput(`cramfs: the entries of ${dir.path} take ${dir.size} bytes, more than the 16 MiB - 1 a directory holds; split it`);
  }
  for (const c of kids) if (c.children) pos = placeDir(c, pos);
  return pos;
}

/** The pages of `node` to store XIP, checked. */
function xipSet(node: Node, blocks: number, opts: CramfsOptions): Set<number> {
  const chosen = new Set<number>();
  if (opts.xipPages === undefined || (node.mode & S_IFMT) !== S_IFREG) return chosen;
  for (const p of opts.xipPages(node.path, node.data!)) {
    if (!Number.isInteger(p) || p < 0 || p >= blocks) {
      throw badInput(`cramfs xipPages for ${node.path}: page ${String(p)} is not one of its ${blocks} pages (0 to ${blocks - 1}); fix the choice`);
    }
    chosen.add(p);
  }
  // cramfs_read_folio (inode.c lines 853-858) takes the length of a direct
  // uncompressed last block from offset_in_page(i_size), which is 0 when the
  // file ends on a page boundary; a length of 0 then reads as a hole (line
  // 894): read() would return a page of zeros. Such a last page is stored
  // compressed instead.
  if (node.size % PAGE === 0) chosen.delete(blocks - 1);
  return chosen;
}

/**
 * Writes the block pointers and blocks of a file or symlink at `at` through
 * `put`; returns the end (4-aligned) and the report. The kernel finds a
 * block without a direct pointer from the previous block's pointer (its
 * end, or for a direct previous block its start + PAGE), so blocks are laid
 * out in page order with nothing between a direct page and the next block.
 */
function writeBlocks(node: Node, at: number, xip: Set<number>, le: boolean, put: (at: number, bytes: Uint8Array) => void) {
  const data = node.data!;
  const blocks = Math.ceil(data.length / PAGE);
  const ptrs = new DataView(new ArrayBuffer(4 * blocks));
  let pos = at + 4 * blocks;
  let compressedBytes = 0;
  for (let i = 0; i < blocks; i++) {
    const page = data.subarray(i * PAGE, (i + 1) * PAGE);
    // Addresses stay below 2^30, clear of the flag bits: data starts below
    // 256 MiB (setOffset) and a file's blocks span well under 64 MiB.
    let ptr: number;
    if (xip.has(i)) {
      // Uncompressed at a page boundary, the rest of a partial last page left
      // zero (the image is zero-filled) so the kernel may map it too
      // (cramfs_last_page_is_shared); consecutive XIP pages come out
      // physically consecutive, as cramfs_get_block_range needs.
      pos = alignUp(pos, PAGE);
      put(pos, page);
      ptr = (pos >>> 2) | BLK_DIRECT_PTR | BLK_UNCOMPRESSED;
      pos += PAGE;
    } else {
      // zlib format (header and Adler-32), as the kernel's zlib_inflate reads it.
      const z = deflateSync(page, { level: 9 });
      put(pos, z);
      pos += z.length;
      compressedBytes += z.length;
      ptr = pos;
    }
    ptrs.setUint32(4 * i, ptr >>> 0, le);
  }
  put(at, new Uint8Array(ptrs.buffer));
  const pages = [...xip].sort((a, b) => a - b);
  const report: CramfsFileReport = { path: node.path, size: data.length, blocks, xipPages: pages, compressedBytes, xipBytes: pages.length * PAGE };
  return { end: alignUp(pos, 4), report };
}

function putInode(v: DataView, n: Node, le: boolean): void {
  const namelen = alignUp(n.name.length, 4) / 4;
  const offset = n.offset / 4;
  // Bitfields: on little-endian the first-declared field takes the low bits, on big-endian the high bits.
  const words = le
    ? [n.mode | (n.uid << 16), n.size | (n.gid << 24), namelen | (offset << 6)]
    : [(n.mode << 16) | n.uid, (n.size << 8) | n.gid, (namelen << 26) | offset];
  words.forEach((w, i) => v.setUint32(n.inodeAt + 4 * i, w >>> 0, le));
}

/**
 * A cramfs image of `entries` (the root directory itself, mode 0755, not
 * among them). Deterministic: no times, owners as the entries give them (the
 * 16-bit uid and 8-bit gid fields), file contents read from `location`.
 */
export function mkcramfs(entries: readonly InitramfsEntry[], opts: CramfsOptions): { image: Uint8Array; files: CramfsFileReport[] } {
  const le = opts.endian === 'little';
  const volume = utf8(opts.name ?? 'Compressed'); // mkfs.cramfs's default name
  if (volume.length > 16 || volume.includes(0)) {
    throw badInput(`cramfs volume name ${JSON.stringify(opts.name)} must be at most 16 bytes without NUL; shorten it`);
  }
  const { root, nodes } = buildTree(entries);
  const dirEnd = placeDir(root, SUPER_BYTES);

  const pieces: { at: number; bytes: Uint8Array }[] = [];
  const put = (at: number, bytes: Uint8Array): void => void pieces.push({ at, bytes });
  const files: CramfsFileReport[] = [];
  let blocks = 0;
  let direct = false;
  const writeData = (dir: Node, pos: number): number => {
    for (const c of dir.children!) {
      if (c.children) {
        pos = writeData(c, pos);
      } else if (c.data !== undefined && c.size > 0) {
        setOffset(c, pos);
        const n = Math.ceil(c.size / PAGE);
        const xip = xipSet(c, n, opts);
        const w = writeBlocks(c, pos, xip, le, put);
        if ((c.mode & S_IFMT) === S_IFREG) files.push(w.report);
        blocks += n;
        direct ||= xip.size > 0;
        pos = w.end;
      } else if ((c.mode & S_IFMT) === S_IFREG) {
        files.push({ path: c.path, size: 0, blocks: 0, xipPages: [], compressedBytes: 0, xipBytes: 0 });
      }
    }
    return pos;
  };
  const dataEnd = writeData(root, dirEnd);

  // Whole pages, as mkfs.cramfs does: on a block device (a loop device, an
  // mtdblock) cramfs_blkdev_read counts the device in whole pages, rounded
  // down, and reads a page past that as zeros (inode.c lines 223, 232), so
  // data in a partial last page would be lost. At least 252 bytes after the
  // last entry: cramfs_readdir and
  // cramfs_lookup read every entry as 12 + 252 bytes (inode.c lines 731,
  // 780), and on a linear (MTD) mount cramfs_direct_read returns the zero
  // page for a read that crosses the image end (line 270), so an entry in the
  // last 264 bytes would read as an empty name (EIO).
  const size = alignUp(Math.max(dataEnd, dirEnd + MAX_NAME), PAGE);
  const image = new Uint8Array(size);
  const v = new DataView(image.buffer);
  for (const p of pieces) image.set(p.bytes, p.at);
  for (const n of nodes) {
    putInode(v, n, le);
    image.set(n.name, n.inodeAt + INODE_BYTES);
  }
  const flags = CRAMFS_FLAGS.fsidVersion2 | CRAMFS_FLAGS.sortedDirs | (direct ? CRAMFS_FLAGS.extBlockPointers : 0);
  v.setUint32(0, MAGIC, le);
  v.setUint32(4, size, le);
  v.setUint32(8, flags, le);
  image.set(utf8(SIGNATURE), 16);
  // fsid: crc (at 32, computed with the field 0), edition 0, blocks, files (the inodes, root included).
  v.setUint32(40, blocks, le);
  v.setUint32(44, nodes.length, le);
  image.set(volume, 48);
  v.setUint32(32, crc32(image), le);
  return { image, files };
}

/** One file of a cramfs image as the kernel sees it. */
export interface CramfsNode {
  /** st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** i_size: bytes of a file or link target, of a directory's entries; 0 for a device node. */
  size: number;
  type: 'dir' | 'file' | 'slink' | 'nod';
  /** Contents of a regular file. */
  data?: Uint8Array;
  target?: string;
  /** Device number of a node as stored: (major << 8) | minor (old_encode_dev). */
  rdev?: number;
  /** Raw block pointers of a file or symlink with data, flags included. */
  blockPointers?: number[];
}

export interface CramfsImage {
  endian: 'little' | 'big';
  flags: number;
  name: string;
  fsid: { crc: number; edition: number; blocks: number; files: number };
  /** By absolute path ('/' is the root), depth first, each directory's entries in stored order. */
  files: Map<string, CramfsNode>;
}

/**
 * Reads a cramfs image as the kernel does (superblock at byte 0, either byte
 * order, file data as cramfs_read_folio finds it: holes, zlib blocks and
 * extended block pointers), checking the CRC. Throws badInput naming what is
 * wrong.
 */
export function readCramfs(image: Uint8Array): CramfsImage {
  const bad = (why: string): never => {
    throw badInput(`cramfs image: ${why}`);
  };
  if (image.length < SUPER_BYTES) bad(`${image.length} bytes, shorter than a superblock`);
  const v = new DataView(image.buffer, image.byteOffset, image.length);
  const le = v.getUint32(0, true) === MAGIC;
  if (!le && v.getUint32(0, false) !== MAGIC) bad('no cramfs magic at byte 0');
  const u32 = (at: number): number => (at + 4 <= image.length ? v.getUint32(at, le) : bad(`read past the end at byte ${at}`));
  const u16 = (at: number): number => (at + 2 <= image.length ? v.getUint16(at, le) : bad(`read past the end at byte ${at}`));
  const flags = u32(8);
  if (flags & ~SUPPORTED_FLAGS) bad(`unsupported feature flags 0x${flags.toString(16)}; the kernel would not mount it`);
  let size = image.length;
  if (flags & CRAMFS_FLAGS.fsidVersion2) {
    size = u32(4);
    if (size > image.length) bad(`the superblock says ${size} bytes, the image has ${image.length}`);
    const copy = new Uint8Array(image.subarray(0, size)); // a copy, also of a Buffer
    copy.fill(0, 32, 36);
    if (crc32(copy) !== u32(32)) bad('CRC does not match');
  }
  const inode = (at: number) => {
    const [w0, w1, w2] = [u32(at), u32(at + 4), u32(at + 8)];
    return le
      ? { mode: w0 & 0xffff, uid: w0 >>> 16, size: w1 & 0xffffff, gid: w1 >>> 24, namelen: (w2 & 0x3f) * 4, offset: (w2 >>> 6) * 4 }
      : { mode: w0 >>> 16, uid: w0 & 0xffff, size: w1 >>> 8, gid: w1 & 0xff, namelen: (w2 >>> 26) * 4, offset: (w2 & 0x3ffffff) * 4 };
  };

  // cramfs_read_folio, page by page.
  const readData = (path: string, base: number, isize: number) => {
    const maxblock = Math.ceil(isize / PAGE);
    const out = new Uint8Array(maxblock * PAGE);
    const pointers: number[] = [];
    for (let i = 0; i < maxblock; i++) {
      const raw = u32(base + 4 * i);
      pointers.push(raw);
      const uncompressed = (raw & BLK_UNCOMPRESSED) !== 0;
      const ptr = raw & BLK_ADDR;
      let start: number;
      let len: number;
      if (raw & BLK_DIRECT_PTR) {
        start = ptr * 4;
        if (uncompressed) {
          len = i === maxblock - 1 ? isize % PAGE : PAGE;
        } else {
          len = u16(start);
          start += 2;
        }
      } else {
        start = i === 0 ? base + 4 * maxblock : u32(base + 4 * (i - 1));
        if (start & BLK_DIRECT_PTR) {
          const prev = start;
          start = (prev & BLK_ADDR) * 4;
          start += prev & BLK_UNCOMPRESSED ? PAGE : 2 + u16(start);
        }
        start &= BLK_ADDR;
        len = (ptr - start) >>> 0;
      }
      if (len === 0) continue; // a hole
      if (len > 2 * PAGE || (uncompressed && len > PAGE)) bad(`${path}: block ${i} has a bad size ${len}`);
      if (start + len > size) bad(`${path}: block ${i} lies past the end of the image`);
      const block = image.subarray(start, start + len);
      if (uncompressed) {
        out.set(block, i * PAGE);
      } else {
        try {
          out.set(inflateSync(block, { maxOutputLength: PAGE }), i * PAGE);
        } catch (err) {
          bad(`${path}: block ${i} does not decompress to at most a page (${(err as Error).message})`);
        }
      }
    }
    return { data: out.subarray(0, isize), pointers };
  };

  const files = new Map<string, CramfsNode>();
  const seenDirs = new Set<number>();
  const walk = (path: string, at: number): void => {
    const ino = inode(at);
    const node: CramfsNode = { mode: ino.mode, uid: ino.uid, gid: ino.gid, size: ino.size, type: 'nod' };
    files.set(path, node);
    switch (ino.mode & S_IFMT) {
      case S_IFDIR: {
        node.type = 'dir';
        if (ino.offset === 0) return;
        if (seenDirs.has(ino.offset)) bad(`${path}: its entries are another directory's too`);
        seenDirs.add(ino.offset);
        for (let pos = ino.offset; pos < ino.offset + ino.size; ) {
          // The kernel reads an entry as 12 + 252 bytes; on a linear (MTD) mount one that ends past the image reads as zeros.
          if (pos + INODE_BYTES + MAX_NAME > size) {
            bad(`${path}: the entry at byte ${pos} lies in the last ${INODE_BYTES + MAX_NAME} bytes, which a linear (MTD) mount reads as zeros`);
          }
          const child = inode(pos);
          let n = child.namelen;
          while (n > 0 && image[pos + INODE_BYTES + n - 1] === 0) n--;
          if (n === 0) bad(`${path}: the entry at byte ${pos} has an empty name`);
          const name = new TextDecoder().decode(image.subarray(pos + INODE_BYTES, pos + INODE_BYTES + n));
          walk(path === '/' ? `/${name}` : `${path}/${name}`, pos);
          pos += INODE_BYTES + child.namelen;
        }
        return;
      }
      case S_IFREG:
      case S_IFLNK: {
        const isLink = (ino.mode & S_IFMT) === S_IFLNK;
        node.type = isLink ? 'slink' : 'file';
        const { data, pointers } = readData(path, ino.offset, ino.size);
        if (pointers.length > 0) node.blockPointers = pointers;
        if (isLink) node.target = new TextDecoder().decode(data);
        else node.data = data;
        return;
      }
      case S_IFCHR:
      case S_IFBLK:
      case 0o010000: // FIFO
      case 0o140000: // socket
        node.rdev = ino.size;
        node.size = 0;
        return;
      default:
        bad(`${path}: unknown file type 0${(ino.mode & S_IFMT).toString(8)}`);
    }
  };
  const root = inode(ROOT_INODE_AT);
  if ((root.mode & S_IFMT) !== S_IFDIR) bad('the root is not a directory');
  if (root.offset !== 0 && root.offset !== SUPER_BYTES) {
    bad(`root entries at byte ${root.offset}; only images with the superblock at byte 0 are read`);
  }
  walk('/', ROOT_INODE_AT);

  const name = image.subarray(48, 64);
  const nul = name.indexOf(0);
  return {
    endian: le ? 'little' : 'big',
    flags,
    name: new TextDecoder().decode(nul < 0 ? name : name.subarray(0, nul)),
    fsid: { crc: u32(32), edition: u32(36), blocks: u32(40), files: u32(44) },
    files,
  };
}
