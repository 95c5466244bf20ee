import { closeSync, existsSync, lstatSync, openSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { badInput } from '../errors.ts';
import type { InitramfsEntry } from './initramfs.ts';

/**
 * A staged root filesystem (any directory) as initramfs entries: every
 * directory, regular file and symlink below it, with its permission bits,
 * owned by 0:0, plus /dev/console and /dev/null as device nodes (made by
 * gen_init_cpio, so no root is needed). The entries are sorted (the list
 * renderer sorts too) and carry no host owners or times: the embedded cpio
 * then depends only on names, modes, link targets and contents once the
 * kernel build pins the timestamps (KBUILD_BUILD_TIMESTAMP, see
 * src/kernel/kbuild.ts).
 *
 * What a cpio made by gen_init_cpio from a list cannot hold, and what the
 * image must not depend on, is refused with the host path named: sockets,
 * fifos, device nodes (the two the kernel needs are added), symlinks whose
 * target leaves the tree, names gen_init_cpio would split (whitespace),
 * unreadable files.
 */

/** The device nodes every staged rootfs gets: PID 1 needs a console, and almost everything /dev/null. */
export const DEV_NODES: readonly InitramfsEntry[] = [
  { type: 'nod', name: '/dev/console', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5, minor: 1 },
  { type: 'nod', name: '/dev/null', mode: 0o666, uid: 0, gid: 0, devType: 'c', major: 1, minor: 3 },
];

const UNSAFE = /[\s\x00-\x1f\x7f]/;

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a fifo (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device node';
  if (st.isBlockDevice()) return 'a block device node';
  return 'an unknown kind of file';
}

/**
 * Where a symlink at image path `linkPath` with target `target` points, as
 * an image path, or undefined when the target climbs above the root.
 * Absolute targets count from the image's root (that is how the booted
 * system reads them); this is purely lexical, a dangling link inside the
 * tree is fine.
 */
export function resolveLinkInTree(linkPath: string, target: string): string | undefined {
  const base = target.startsWith('/') ? [] : linkPath.split('/').filter((p) => p !== '').slice(0, -1);
  const stack = [...base];
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return undefined;
      stack.pop();
    } else stack.push(part);
  }
  return `/${stack.join('/')}`;
}

function checkReadable(host: string): void {
  try {
    closeSync(openSync(host, 'r'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw badInput(`staged rootfs: cannot read ${host} (${code}): make it readable (chmod u+r) or remove it`);
  }
}

export interface RootfsOptions {
  /** What the directory is called in messages (default 'staged rootfs'). */
  what?: string;
}

/** The initramfs entries of a staged rootfs directory. Throws badInput naming the offending path. */
export function rootfsEntries(dir: string, opts: RootfsOptions = {}): InitramfsEntry[] {
  const what = opts.what ?? 'staged rootfs';
  const root = resolve(dir);
  if (!existsSync(root)) throw badInput(`${what} ${root}: no such directory; stage the rootfs there or point LWRT_ROOTFS at it`);
  if (!statSync(root).isDirectory()) throw badInput(`${what} ${root}: not a directory; LWRT_ROOTFS must name a directory`);
  if (UNSAFE.test(root)) {
    throw badInput(`${what} ${JSON.stringify(root)}: the path contains whitespace, which gen_init_cpio cannot read; move it`);
  }
  checkReadable(root);
  const entries: InitramfsEntry[] = [];
  const walk = (hostDir: string, imageDir: string) => {
    let names: string[];
    try {
      names = readdirSync(hostDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw badInput(`${what}: cannot list ${hostDir} (${code}): make it readable (chmod u+rx) or remove it`);
    }
    for (const name of names.sort()) {
      const host = join(hostDir, name);
      const image = `${imageDir}/${name}`;
      if (UNSAFE.test(name)) {
        throw badInput(`${what}: ${JSON.stringify(host)} has whitespace or a control character in its name, which gen_init_cpio cannot read; rename it`);
      }
      const st = lstatSync(host);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) {
        const target = readlinkSync(host);
        if (UNSAFE.test(target) || target === '') {
          throw badInput(`${what}: symlink ${host} -> ${JSON.stringify(target)}: empty target or whitespace in it; gen_init_cpio cannot store it`);
        }
        if (resolveLinkInTree(image, target) === undefined) {
          throw badInput(`${what}: symlink ${host} -> ${target} points outside the rootfs; make it relative to a path inside it (or absolute from the rootfs' /)`);
        }
        entries.push({ type: 'slink', name: image, target, mode: 0o777, uid: 0, gid: 0 });
      } else if (st.isDirectory()) {
        entries.push({ type: 'dir', name: image, mode, uid: 0, gid: 0 });
        walk(host, image);
      } else if (st.isFile()) {
        checkReadable(host);
        entries.push({ type: 'file', name: image, location: host, mode, uid: 0, gid: 0 });
      } else {
        throw badInput(
          `${what}: ${host} is ${kindOf(st)}; the initramfs takes directories, regular files and symlinks ` +
            '(/dev/console and /dev/null are added for you): remove it, or create it at boot',
        );
      }
    }
  };
  walk(root, '');
  return withDevNodes(entries, root, what);
}

/** Add /dev (if missing) and the device nodes; a staged file where a node goes is an error. */
function withDevNodes(entries: InitramfsEntry[], root: string, what: string): InitramfsEntry[] {
  const dev = entries.find((e) => e.name === '/dev');
  if (dev && dev.type !== 'dir') {
    throw badInput(`${what}: ${join(root, 'dev')} is not a directory; /dev must be one (the device nodes go there)`);
  }
  const out = [...entries];
  if (!dev) out.push({ type: 'dir', name: '/dev', mode: 0o755, uid: 0, gid: 0 });
  for (const n of DEV_NODES) {
    if (out.some((e) => e.name === n.name)) {
      throw badInput(`${what}: ${join(root, n.name.slice(1))} is staged, but ${n.name} is the device node the build adds; remove it`);
    }
    out.push({ ...n });
  }
  return out;
}

/**
 * A text listing of the tree for stage stamps: types, full modes and link
 * targets (Hasher.tree covers contents and exec bits only).
 */
export function rootfsListing(entries: readonly InitramfsEntry[]): string {
  return entries
    .map((e) => `${e.type} ${e.name} ${e.mode.toString(8)}${e.type === 'slink' ? ` -> ${e.target}` : ''}`)
    .sort()
    .join('\n');
}
