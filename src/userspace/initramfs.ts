import { isAbsolute, resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';

/**
 * The initramfs as a gen_init_cpio list (the kernel's usr/gen_init_cpio,
 * used through CONFIG_INITRAMFS_SOURCE). One entry per line:
 *   dir   NAME MODE UID GID
 *   file  NAME LOCATION MODE UID GID
 *   nod   NAME MODE UID GID c|b MAJ MIN
 *   slink NAME TARGET MODE UID GID
 * NAME is the absolute path inside the initramfs, MODE is octal permission
 * bits, LOCATION a host file.
 */
interface Common {
  /** Absolute path in the initramfs, e.g. /dev/console. */
  name: string;
  /** Permission bits, e.g. 0o755. */
  mode: number;
  uid: number;
  gid: number;
}
export interface InitramfsDir extends Common {
  type: 'dir';
}
export interface InitramfsFile extends Common {
  type: 'file';
  /** Absolute path of the host file to copy in. */
  location: string;
}
export interface InitramfsNod extends Common {
  type: 'nod';
  devType: 'c' | 'b';
  major: number;
  minor: number;
}
export interface InitramfsSlink extends Common {
  type: 'slink';
  target: string;
}
export type InitramfsEntry = InitramfsDir | InitramfsFile | InitramfsNod | InitramfsSlink;

// gen_init_cpio splits on whitespace and has no quoting: no blanks, no control characters.
const UNSAFE = /[\s\x00-\x1f\x7f]/;

function describe(e: { type?: unknown; name?: unknown }): string {
  return `initramfs entry ${String(e.type)} ${JSON.stringify(e.name)}`;
}

function checkInt(e: InitramfsEntry, what: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw badInput(`${describe(e)}: ${what} ${String(v)} is not a whole number from 0 to ${max}`);
  }
}

function checkName(e: InitramfsEntry): void {
  const n = e.name;
  if (typeof n !== 'string' || !n.startsWith('/') || n === '/') {
    throw badInput(`${describe(e)}: name must be an absolute path below / (e.g. /dev/console)`);
  }
  if (UNSAFE.test(n)) throw badInput(`${describe(e)}: name contains whitespace or a control character; rename it`);
  const parts = n.slice(1).split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw badInput(`${describe(e)}: name has an empty, '.' or '..' component; write the plain path (e.g. /dev/console)`);
  }
}

/** Throws badInput naming the first entry that gen_init_cpio would misread or the kernel could not unpack. */
export function validateEntries(entries: readonly InitramfsEntry[]): void {
  const seen = new Map<string, InitramfsEntry>();
  for (const e of entries) {
    if (!['dir', 'file', 'nod', 'slink'].includes((e as { type: string }).type)) {
      throw badInput(`${describe(e)}: unknown type; use dir, file, nod or slink`);
    }
    checkName(e);
    checkInt(e, 'mode', e.mode, 0o7777);
    checkInt(e, 'uid', e.uid, 0x7fffffff); // gen_init_cpio reads %d
    checkInt(e, 'gid', e.gid, 0x7fffffff);
    if (e.type === 'file') {
      if (typeof e.location !== 'string' || !isAbsolute(e.location) || UNSAFE.test(e.location)) {
        throw badInput(`${describe(e)}: location ${JSON.stringify(e.location)} must be an absolute host path without whitespace`);
      }
    } else if (e.type === 'nod') {
      if (e.devType !== 'c' && e.devType !== 'b') {
        throw badInput(`${describe(e)}: device type must be 'c' (character) or 'b' (block)`);
      }
      checkInt(e, 'major', e.major, 4095);
      checkInt(e, 'minor', e.minor, 0xfffff);
    } else if (e.type === 'slink') {
      if (typeof e.target !== 'string' || e.target === '' || UNSAFE.test(e.target)) {
        throw badInput(`${describe(e)}: link target must be a non-empty path without whitespace`);
      }
    }
    if (seen.has(e.name)) throw badInput(`${describe(e)}: listed twice; keep one`);
    seen.set(e.name, e);
  }
  for (const e of entries) {
    const parent = e.name.slice(0, e.name.lastIndexOf('/'));
    if (parent === '') continue;
    const p = seen.get(parent);
    if (!p || p.type !== 'dir') {
      throw badInput(`${describe(e)}: its directory ${parent} is not a dir entry of the initramfs; add it`);
    }
  }
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** Parents before children, then by name: the same list always renders the same text. */
function compareNames(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

export function renderEntry(e: InitramfsEntry): string {
  const own = `${octal(e.mode)} ${e.uid} ${e.gid}`;
  switch (e.type) {
    case 'dir':
      return `dir ${e.name} ${own}`;
    case 'file':
      return `file ${e.name} ${e.location} ${own}`;
    case 'nod':
      return `nod ${e.name} ${own} ${e.devType} ${e.major} ${e.minor}`;
    case 'slink':
      return `slink ${e.name} ${e.target} ${own}`;
  }
}

/** The gen_init_cpio list text: validated, sorted, deterministic. */
export function renderInitramfsList(entries: InitramfsEntry[]): string {
  validateEntries(entries);
  const sorted = [...entries].sort((a, b) => compareNames(a.name, b.name));
  return ['# gen_init_cpio list, generated by xip (src/userspace/initramfs.ts); do not edit', ...sorted.map(renderEntry), ''].join('\n');
}

/** The initramfs of the boot test: /dev, /dev/console (so PID 1 gets fds 0-2), /init. */
export function minimalInitramfs(initPath: string): InitramfsEntry[] {
  return [
    { type: 'dir', name: '/dev', mode: 0o755, uid: 0, gid: 0 },
    { type: 'nod', name: '/dev/console', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5, minor: 1 },
    { type: 'file', name: '/init', location: resolve(initPath), mode: 0o755, uid: 0, gid: 0 },
  ];
}

/** Render and write a list atomically (nothing half-written on error). */
export function writeInitramfsList(path: string, entries: InitramfsEntry[]): string {
  const text = renderInitramfsList(entries);
  writeFileAtomic(path, text);
  return text;
}

/** The host files a gen_init_cpio list pulls in (the LOCATION of each `file` line). */
export function listedFiles(list: string): string[] {
  const out: string[] = [];
  for (const line of list.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'file' && f[2] !== undefined) out.push(f[2]);
  }
  return out.sort();
}
