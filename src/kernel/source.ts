import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { EXIT, XipError, badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { debug } from '../log.ts';
import { run } from '../proc.ts';
import { HashCache, treeHash } from '../stamp.ts';
import { applySeries, seriesFiles, type PatchFile } from './patch.ts';

/** Debian's linux-source-6.12 package puts the tarball here. */
export const DEBIAN_TARBALL = '/usr/src/linux-source-6.12.tar.xz';

/** Where the kernel comes from. */
export type SourceSpec =
  | { kind: 'tarball'; path: string; sha256?: string; isDefault: boolean }
  | { kind: 'dir'; path: string };

export interface SourceOptions {
  kernelSrc?: string;
  kernelTarball?: string;
  kernelSha256?: string;
}

/** Pick the source from KERNEL_SRC / KERNEL_TARBALL / KERNEL_SHA256 (already merged with options). */
export function resolveSourceSpec(o: SourceOptions): SourceSpec {
  const src = o.kernelSrc?.trim() || undefined;
  const tarball = o.kernelTarball?.trim() || undefined;
  const sum = o.kernelSha256?.trim() || undefined;
  if (src && tarball) {
    throw badInput('KERNEL_SRC and KERNEL_TARBALL are both set: give only one of them');
  }
  if (sum !== undefined && !/^[0-9a-fA-F]{64}$/.test(sum)) {
    throw badInput(`KERNEL_SHA256 '${sum}' is not a sha256 (64 hex digits): copy it from 'sha256sum FILE'`);
  }
  if (src) {
    if (sum) throw badInput('KERNEL_SHA256 applies to KERNEL_TARBALL, not to KERNEL_SRC: drop it or use KERNEL_TARBALL');
    return { kind: 'dir', path: resolve(src) };
  }
  if (tarball) return { kind: 'tarball', path: resolve(tarball), sha256: sum?.toLowerCase(), isDefault: false };
  return { kind: 'tarball', path: DEBIAN_TARBALL, sha256: sum?.toLowerCase(), isDefault: true };
}

export function describeSpec(spec: SourceSpec): string {
  return spec.kind === 'dir' ? `KERNEL_SRC=${spec.path}` : spec.isDefault ? spec.path : `KERNEL_TARBALL=${spec.path}`;
}

/** Paths of the prepared source, shared by every build under buildDir. */
export function sourcePaths(buildDir: string) {
  const root = join(buildDir, 'src');
  return {
    root,
    /** The prepared (extracted + patched) tree: make -C here, O= elsewhere. */
    tree: join(root, 'linux'),
    /** What was prepared: origin, version, series, touched files. */
    info: join(root, 'source.json'),
    stamp: join(root, 'source.stamp'),
  };
}

export interface SourceInfo {
  /** e.g. 6.12.117 */
  version: string;
  origin: string;
  /** Content hash of the tarball or tree the source came from. */
  originHash: string;
  series: { name: string; sha256: string }[];
  /** Files touched by the series (relative to the tree). */
  touched: string[];
  prepared: string;
}

export function readSourceInfo(buildDir: string): SourceInfo | undefined {
  try {
    return JSON.parse(readFileSync(sourcePaths(buildDir).info, 'utf8')) as SourceInfo;
  } catch {
    return undefined;
  }
}

/**
 * The kernel version from a tree's top Makefile (VERSION, PATCHLEVEL,
 * SUBLEVEL, EXTRAVERSION). Throws a one-line badInput when dir is not the
 * top of a kernel source tree.
 */
export function readKernelVersion(dir: string, what = dir): string {
  const makefile = join(dir, 'Makefile');
  const notTree = (why: string) =>
    badInput(`${what} is not a Linux kernel source tree (${why}): point it at the top directory of an unpacked kernel`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw notTree('no such directory');
  let text: string;
  try {
    text = readFileSync(makefile, 'utf8');
  } catch {
    throw notTree('no readable Makefile');
  }
  const field = (name: string) => new RegExp(`^${name}\\s*=\\s*(\\S*)\\s*$`, 'm').exec(text)?.[1];
  const version = field('VERSION');
  const patchlevel = field('PATCHLEVEL');
  const sublevel = field('SUBLEVEL') ?? '';
  const extra = field('EXTRAVERSION') ?? '';
  if (!version || !/^\d+$/.test(version) || !patchlevel || !/^\d+$/.test(patchlevel)) {
    throw notTree('its Makefile has no VERSION/PATCHLEVEL');
  }
  if (!existsSync(join(dir, 'Kconfig')) || !existsSync(join(dir, 'arch', 'mips'))) {
    throw notTree('no Kconfig or arch/mips');
  }
  return `${version}.${patchlevel}${sublevel !== '' ? `.${sublevel}` : ''}${extra}`;
}

/** Content hash of where the source comes from; checks it can be read. */
export function originHash(spec: SourceSpec, cache: HashCache): string {
  if (spec.kind === 'dir') {
    readKernelVersion(spec.path, `KERNEL_SRC=${spec.path}`);
    return `dir:${treeHash(spec.path, { exclude: ['.git'] }, cache)}`;
  }
  checkTarballReadable(spec);
  return `tarball:${cache.fileHash(spec.path)}`;
}

function checkTarballReadable(spec: Extract<SourceSpec, { kind: 'tarball' }>): void {
  const what = describeSpec(spec);
  if (!existsSync(spec.path)) {
    if (spec.isDefault) {
      throw new XipError(
        `kernel source ${spec.path} not found: install Debian's linux-source-6.12 ('xip doctor --install'), or set KERNEL_SRC=DIR or KERNEL_TARBALL=FILE`,
        { exitCode: EXIT.environment },
      );
    }
    throw badInput(`${what}: no such file; fix the path`);
  }
  if (!statSync(spec.path).isFile()) throw badInput(`${what} is not a file: give a .tar.xz/.tar.gz kernel tarball`);
  try {
    accessSync(spec.path, constants.R_OK);
  } catch {
    throw badInput(`${what} is not readable (permission denied): fix its permissions`);
  }
}

/** Throws a one-line error when the tarball's sha256 is not the expected one. */
export function checkSha256(spec: Extract<SourceSpec, { kind: 'tarball' }>, actual: string): void {
  if (spec.sha256 && spec.sha256 !== actual) {
    throw badInput(
      `${describeSpec(spec)}: sha256 mismatch (expected ${spec.sha256}, got ${actual}); the file is not the one KERNEL_SHA256 names: fetch it again or fix KERNEL_SHA256`,
    );
  }
}

/** Remove leftovers of an interrupted run (temp trees nobody will trust). */
function removeStale(root: string): void {
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    if (name.startsWith('.tmp-') || name.startsWith('.old-')) rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** Unpack or copy the source into tmp; returns the top of the kernel tree in it. */
async function acquire(spec: SourceSpec, tmp: string, log: string): Promise<string> {
  if (spec.kind === 'dir') {
    // Copy everything but .git: the user's tree is never modified.
    const dest = join(tmp, 'linux');
    mkdirSync(dest);
    const entries = readdirSync(spec.path).filter((n) => n !== '.git');
    if (entries.length > 0) {
      await run('cp', ['-a', '--', ...entries.map((n) => join(spec.path, n)), dest], {
        log,
        what: `copy of KERNEL_SRC=${spec.path}`,
      });
    }
    return dest;
  }
  const r = await run('tar', ['-x', '--no-same-owner', '-f', spec.path, '-C', tmp], {
    log,
    allowFailure: true,
    what: 'tar',
  });
  if (r.code !== 0) {
    throw badInput(
      `${describeSpec(spec)} could not be unpacked (not a tar archive, or damaged): ${r.tail.filter((l) => l.trim()).slice(-1)[0] ?? `tar exit code ${r.code}`}`,
      r.tail.slice(-10),
    );
  }
  const top = readdirSync(tmp);
  if (top.includes('Makefile')) return tmp;
  const dirs = top.filter((n) => statSync(join(tmp, n)).isDirectory());
  if (dirs.length === 1 && dirs[0] !== undefined) return join(tmp, dirs[0]);
  throw badInput(`${describeSpec(spec)} does not hold one kernel source directory (found: ${top.slice(0, 5).join(', ') || 'nothing'})`);
}

export interface PrepareOptions {
  spec: SourceSpec;
  buildDir: string;
  series: readonly PatchFile[];
  cache: HashCache;
  /** Log of tar/cp/patch output. */
  log: string;
  onProgress?: (text: string) => void;
}

/**
 * Prepare build/src/linux: unpack (or copy) the source into a temp dir under
 * build/src, check it is a kernel tree, apply the series there, and only
 * then rename it into place. Whatever fails, the old tree (if any) is left
 * as it was and nothing half-done remains for a later run to trust.
 */
export async function prepareSource(o: PrepareOptions): Promise<SourceInfo> {
  const paths = sourcePaths(o.buildDir);
  mkdirSync(paths.root, { recursive: true });
  removeStale(paths.root);
  const origin = describeSpec(o.spec);
  o.onProgress?.(`checking ${origin}`);
  const hash = originHash(o.spec, o.cache);
  if (o.spec.kind === 'tarball') checkSha256(o.spec, hash.replace(/^tarball:/, ''));
  o.cache.save();

  // The stage also reruns when only the toolkit changed (its hash is in every
  // stamp): a tree prepared from the same source and series is kept as it
  // is, so that no kernel build recompiles for a change to the toolkit.
  const prepared = readSourceInfo(o.buildDir);
  const sameSeries = (x: SourceInfo) =>
    x.series.length === o.series.length && x.series.every((p, i) => p.name === o.series[i]?.name && p.sha256 === o.series[i]?.sha256);
  if (prepared && prepared.originHash === hash && sameSeries(prepared) && existsSync(join(paths.tree, 'Makefile'))) {
    o.onProgress?.('the prepared tree is already this source and series');
    return prepared;
  }

  const tmp = mkdtempSync(join(paths.root, '.tmp-'));
  try {
    o.onProgress?.(o.spec.kind === 'dir' ? `copying ${o.spec.path}` : `unpacking ${o.spec.path}`);
    const tree = await acquire(o.spec, tmp, o.log);
    const version = readKernelVersion(tree, origin);
    if (existsSync(join(tree, '.config')) || existsSync(join(tree, 'include', 'config'))) {
      // A configured tree refuses O= builds; clean our copy (never the user's).
      o.onProgress?.('cleaning the copied tree (make mrproper)');
      await run('make', ['-C', tree, 'ARCH=mips', 'mrproper'], { log: o.log, what: 'make mrproper' });
    }
    if (o.series.length > 0) {
      o.onProgress?.(`applying ${o.series.length} patch(es)`);
      await applySeries(tree, o.series, o.log);
    }
    const old = readSourceInfo(o.buildDir);
    const info: SourceInfo = {
      version,
      origin,
      originHash: hash,
      series: o.series.map((p) => ({ name: p.name, sha256: p.sha256 })),
      touched: seriesFiles(o.series),
      prepared: new Date().toISOString(),
    };
    // tar restores the files' original (old) mtimes. A file the old series
    // patched and the new one does not would come back older than its
    // object file and make would not rebuild it: give every file either
    // series touches a fresh mtime.
    const now = new Date();
    for (const rel of new Set([...(old?.touched ?? []), ...info.touched])) {
      const p = join(tree, rel);
      if (existsSync(p)) utimesSync(p, now, now);
    }
    rmSync(paths.info, { force: true });
    if (existsSync(paths.tree)) {
      const aside = join(paths.root, `.old-${process.pid}`);
      renameSync(paths.tree, aside);
      renameSync(tree, paths.tree);
      rmSync(aside, { recursive: true, force: true });
    } else {
      renameSync(tree, paths.tree);
    }
    writeFileAtomic(paths.info, `${JSON.stringify(info, null, 2)}\n`);
    debug(`kernel ${version} prepared in ${paths.tree}`);
    return info;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
