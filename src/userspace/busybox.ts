import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { crossIncludeDir, type BoardData } from '../boards/board.ts';
import type { BuildContext } from '../context.ts';
import { EXIT, XipError, badInput } from '../errors.ts';
import { parseJsonText, sha256, writeFileAtomic } from '../fsutil.ts';
import { info } from '../log.ts';
import { run } from '../proc.ts';
import { hashFile } from '../stamp.ts';
import { jobs } from '../kernel/kbuild.ts';
import { mergeConfig, missingFromConfig } from '../kernel/kconfig.ts';
import { staticProgramProblem } from './program.ts';

/**
 * The router's busybox: Debian's busybox SOURCE package, configured with
 * only the applets the router needs (userspace/lwrt/busybox.config on top
 * of allnoconfig) and linked statically against musl, itself built from
 * Debian's musl SOURCE package, both with the board's gcc cross compiler.
 * Debian's own busybox-static binary (2.3 MB, 1.1 MB gzipped, glibc) does
 * not fit the flash next to a networking kernel; this one is about a sixth
 * of that.
 *
 * Everything comes from Debian through `apt-get source --download-only`
 * (needs a deb-src entry; `xip doctor --install` adds one for bookworm),
 * never installed into the host, each file checked against the sha256
 * pinned in userspace/lwrt/busybox.json. Source packages do not depend on
 * the host's architectures (no foreign dpkg architecture), so the same pin
 * serves Debian 12 and 13 (which has no mipsel port) and a big-endian board
 * (musl's target comes from the board's cross compiler). musl is cached
 * under build/lwrt/musl-<key>/, busybox under build/lwrt/busybox-<key>/,
 * so every variant and a second build reuse them.
 */

/** A Debian source package: what `apt-get source --download-only PACKAGE=VERSION` fetches, with each file's sha256. */
const SourcePinSchema = z.object({
  package: z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/),
  version: z.string().regex(/^[0-9A-Za-z.+~:-]+$/),
  files: z.record(z.string().regex(/^[A-Za-z0-9_.+~-]+$/), z.string().regex(/^[0-9a-f]{64}$/)),
});
export type SourcePin = z.infer<typeof SourcePinSchema>;

export const PinSchema = z.object({
  comment: z.string().optional(),
  /** busybox's source package. */
  source: SourcePinSchema,
  /** The C library's source package: musl (ensureMusl knows how to build only that one). */
  libc: SourcePinSchema.extend({ package: z.literal('musl') }),
});
export type BusyboxPin = z.infer<typeof PinSchema>;

export function lwrtDir(repo: string): string {
  return join(repo, 'userspace', 'lwrt');
}

export function pinPath(repo: string): string {
  return join(lwrtDir(repo), 'busybox.json');
}

export function configFragmentPath(repo: string): string {
  return join(lwrtDir(repo), 'busybox.config');
}

/** Parse and check the pin file's text; `where` names it in errors. */
export function parsePin(text: string, where: string): BusyboxPin {
  const pin = parseJsonText(PinSchema, text, where);
  for (const k of ['source', 'libc'] as const) {
    const dsc = Object.keys(pin[k].files).filter((f) => f.endsWith('.dsc'));
    if (dsc.length !== 1) throw badInput(`${where}: ${k}.files must list exactly one .dsc file`);
  }
  return pin;
}

export function readPin(repo: string): BusyboxPin {
  const p = pinPath(repo);
  if (!existsSync(p)) throw badInput(`${p} not found: the router userspace needs its busybox pin file`);
  return parsePin(readFileSync(p, 'utf8'), p);
}

/** The upstream part of a Debian version: 1:1.35.0-4+deb12u1 -> 1.35.0. */
export function upstreamVersion(debianVersion: string): string {
  const noEpoch = debianVersion.replace(/^\d+:/, '');
  const dash = noEpoch.lastIndexOf('-');
  return dash > 0 ? noEpoch.slice(0, dash) : noEpoch;
}

/** The Version field of a Debian .dsc (or control) text, or undefined. */
export function parseDscVersion(text: string): string | undefined {
  const m = /^Version:\s*(\S+)\s*$/m.exec(text);
  return m?.[1];
}

/** Throw naming the file when its sha256 is not the pinned one. */
export function checkSha256(file: string, actual: string, expected: string, pinFile: string): void {
  if (actual !== expected) {
    throw new XipError(
      `${basename(file)}: sha256 ${actual} does not match ${expected} pinned in ${pinFile}: ` +
        'the archive served another file; remove it and fetch again, or update the pin after checking the new package',
      { exitCode: EXIT.failed },
    );
  }
}

async function verifyFile(file: string, expected: string, pinFile: string): Promise<void> {
  checkSha256(file, await hashFile(file), expected, pinFile);
}

const APT_HELP =
  'the host needs a deb-src entry for Debian bookworm (source packages only; the same for Debian 12 and 13 hosts): ' +
  '`xip doctor --install` adds it (/etc/apt/sources.list.d/, "Types: deb-src", "Suites: bookworm") and runs apt-get update';

/** The .dsc file of a source pin (parsePin makes sure there is exactly one). */
export function dscOf(pkg: SourcePin): string {
  return Object.keys(pkg.files).find((f) => f.endsWith('.dsc'))!;
}

/** Fetch (or reuse) one pinned source package into dir; each file is checked against the pin. */
export async function fetchSource(pkg: SourcePin, dir: string, pinFile: string, log: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const spec = `${pkg.package}=${pkg.version}`;
  const need = Object.entries(pkg.files);
  const have = (f: string) => existsSync(join(dir, f));
  if (!need.every(([f]) => have(f))) {
    const tmp = join(dir, `.apt-source.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      await run('apt-get', ['source', '--download-only', spec], {
        cwd: tmp,
        log,
        what: `apt-get source ${spec}`,
      }).catch((err: unknown) => {
        throw new XipError(`apt-get source ${spec} failed (log ${log}): ${APT_HELP}`, {
          exitCode: EXIT.environment,
          details: err instanceof XipError ? err.details : [],
          cause: err,
        });
      });
      for (const [f, sum] of need) {
        const got = join(tmp, f);
        if (!existsSync(got)) {
          throw new XipError(`apt-get source fetched no ${f}: the archive has another build of ${pkg.package}; update ${pinFile}`);
        }
        await verifyFile(got, sum, pinFile);
      }
      for (const [f] of need) renameSync(join(tmp, f), join(dir, f));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  for (const [f, sum] of need) await verifyFile(join(dir, f), sum, pinFile);
  const dscFile = dscOf(pkg);
  const v = parseDscVersion(readFileSync(join(dir, dscFile), 'utf8'));
  if (v !== pkg.version) throw new XipError(`${dscFile}: version ${v ?? '(none)'} is not ${pkg.version} of ${pinFile}`);
}

/** Fetch (or reuse) the pinned busybox and musl source packages into dir. */
export async function fetchPinned(pin: BusyboxPin, dir: string, pinFile: string, log: string): Promise<void> {
  await fetchSource(pin.source, dir, pinFile, log);
  await fetchSource(pin.libc, dir, pinFile, log);
}

/** gcc specs that compile and link statically against the installed musl (muslRoot/include, muslRoot/lib). */
export function muslSpecs(muslRoot: string, khdr: string): string {
  const inc = join(muslRoot, 'include');
  const lib = join(muslRoot, 'lib');
  const cpp = `-nostdinc -isystem ${inc} -isystem ${khdr} -isystem include%s`;
  return [
    '%rename cpp_options old_cpp_options',
    '',
    '*cpp_options:',
    `${cpp} %(old_cpp_options)`,
    '',
    // Keep the compiler's own cc1 options: gcc 14's driver adds -EL/-EB, which only they turn into -mel/-meb.
    '%rename cc1 old_cc1',
    '',
    '*cc1:',
    `%(old_cc1) ${cpp}`,
    '',
    '*link_libgcc:',
    `-L${lib} -L .%s`,
    '',
    '*libgcc:',
    'libgcc.a%s %:if-exists(libgcc_eh.a%s)',
    '',
    '*startfile:',
    `${lib}/crt1.o ${lib}/crti.o crtbeginT.o%s`,
    '',
    '*endfile:',
    `crtend.o%s ${lib}/crtn.o`,
    '',
    '*link:',
    '%{EB} %{EL} -nostdlib -static',
    '',
  ].join('\n');
}

/** What a musl build is: the Debian source package, the configure target and musl's ARCH plus SUBARCH. */
export interface MuslInfo {
  package: string;
  version: string;
  files: Record<string, string>;
  /** musl's ./configure --target: the cross compiler's triple, e.g. mipsel-linux-gnu. */
  target: string;
  /** musl's ARCH and SUBARCH from its config.mak, e.g. mipsel (hard float; -sf would be soft float). */
  arch: string;
}

export interface MuslBuild {
  /** The installed prefix: include/ and lib/ (libc.a, crt1.o, crti.o, crtn.o). */
  root: string;
  info: MuslInfo;
}

export interface BusyboxInfo {
  /** Upstream version, e.g. 1.35.0. */
  version: string;
  /** The Debian source package it was built from. */
  source: { package: string; version: string; files: Record<string, string> };
  /** The C library it is linked against (statically). */
  libc: MuslInfo;
  /** sha256 and size of the stripped static binary. */
  sha256: string;
  size: number;
  /** Image paths of the applet links, e.g. /bin/sh. */
  applets: string[];
}

export interface BusyboxBuild {
  binary: string;
  info: BusyboxInfo;
}

/** musl's configure --target for a cross compiler prefix: mipsel-linux-gnu- -> mipsel-linux-gnu. */
export function muslTarget(crossCompile: string): string {
  const m = /^([A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)+)-$/.exec(basename(crossCompile));
  if (!m) {
    throw badInput(`board crossCompile "${crossCompile}" is not a cross compiler prefix like mipsel-linux-gnu- (a triple and a trailing dash): musl's target comes from it`);
  }
  return m[1]!;
}

/**
 * musl's ./configure arguments. No -O in CFLAGS: musl then picks its own
 * (-Os, with its string, malloc and internal code at -O3). Hard or soft
 * float, endianness and ISA come from the compiler and cpuFlags.
 */
export function muslConfigureArgs(crossCompile: string, cpuFlags: readonly string[]): string[] {
  return [
    `--target=${muslTarget(crossCompile)}`,
    `CROSS_COMPILE=${crossCompile}`,
    `CC=${crossCompile}gcc`,
    `CFLAGS=${cpuFlags.join(' ')}`,
    '--prefix=/',
    '--disable-shared',
    '--disable-wrapper',
  ];
}

/** Change when the musl build steps change in a way its configure arguments do not show. */
const MUSL_RECIPE = 'musl-source-1';

/** Inputs that decide the musl build (its cache key): the pin's libc entry, the recipe and the board's compiler and flags. */
export function muslKey(pin: BusyboxPin, crossCompile: string, cpuFlags: readonly string[]): string {
  return sha256(JSON.stringify([MUSL_RECIPE, pin.libc, muslConfigureArgs(crossCompile, cpuFlags)])).slice(0, 16);
}

/** Inputs that decide the busybox binary (its cache key); the pin file includes musl's. */
export function busyboxKey(repo: string, crossCompile: string, cpuFlags: readonly string[]): string {
  const parts = [
    readFileSync(pinPath(repo), 'utf8'),
    readFileSync(configFragmentPath(repo), 'utf8'),
    readFileSync(join(repo, 'src', 'userspace', 'busybox.ts'), 'utf8'),
    muslKey(readPin(repo), crossCompile, cpuFlags),
    crossCompile,
    cpuFlags.join(' '),
  ];
  return sha256(parts.join('\0')).slice(0, 16);
}

/** musl's ARCH and SUBARCH from the config.mak its configure wrote: "ARCH = mips", "SUBARCH = el" -> mipsel. */
export function muslArchOf(configMak: string): string {
  const get = (k: string) => new RegExp(`^${k} = (.*)$`, 'm').exec(configMak)?.[1]?.trim();
  const arch = get('ARCH');
  if (!arch) throw new XipError('musl config.mak has no ARCH line: musl\'s configure did not finish');
  return `${arch}${get('SUBARCH') ?? ''}`;
}

/** The host directories with the kernel's UAPI headers for the target (the board's uapiHeaders package). */
function kernelHeaderDirs(board: BoardData): string {
  const dir = crossIncludeDir(board);
  if (!existsSync(join(dir, 'linux', 'if.h'))) {
    throw new XipError(`${dir}/linux not found: install the kernel UAPI headers of the cross compiler (${board.hostPackages.uapiHeaders}; xip doctor --install does it)`, {
      exitCode: EXIT.environment,
    });
  }
  return dir;
}

/**
 * The C compiler command of a program linked statically against the built
 * musl: the board's gcc with specs written into work (which must exist),
 * seeing musl's headers and, of the cross headers, only the kernel's UAPI
 * directories (the rest is glibc's).
 */
export function muslCompiler(ctx: BuildContext, musl: MuslBuild, work: string): string {
  const khdr = join(work, 'khdr');
  mkdirSync(khdr, { recursive: true });
  const hdrs = kernelHeaderDirs(ctx.board);
  for (const d of ['linux', 'asm', 'asm-generic', 'mtd']) {
    if (existsSync(join(hdrs, d)) && !existsSync(join(khdr, d))) symlinkSync(join(hdrs, d), join(khdr, d));
  }
  const specs = join(work, 'musl.specs');
  writeFileSync(specs, muslSpecs(musl.root, khdr));
  return `${ctx.board.crossCompile}gcc -specs=${specs}`;
}

/**
 * Build musl from the pinned Debian source package for the board (cached
 * under build/lwrt/musl-<key>/): Debian's patches applied by dpkg-source,
 * then musl's own configure and make, static only. The source package must
 * already be in downloads (fetchPinned).
 */
export async function ensureMusl(ctx: BuildContext, pin: BusyboxPin, downloads: string): Promise<MuslBuild> {
  const key = muslKey(pin, ctx.board.crossCompile, ctx.board.cpuFlags);
  const base = join(ctx.buildDir, 'lwrt');
  const out = join(base, `musl-${key}`);
  const infoPath = join(out, 'musl.json');
  if (existsSync(infoPath) && ['libc.a', 'crt1.o', 'crti.o', 'crtn.o'].every((f) => existsSync(join(out, 'lib', f)))) {
    return { root: out, info: JSON.parse(readFileSync(infoPath, 'utf8')) as MuslInfo };
  }
  const log = join(base, `musl-${key}.log`);
  mkdirSync(base, { recursive: true });
  writeFileSync(log, '');
  const started = Date.now();
  const work = join(base, `.musl-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const src = join(work, 'src');
    await run('dpkg-source', ['--no-check', '-x', join(downloads, dscOf(pin.libc)), src], { log, what: 'dpkg-source -x (musl)' });
    // The host's flags are not the target's.
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
    for (const v of ['CFLAGS', 'CPPFLAGS', 'LDFLAGS', 'LIBCC', 'CROSS_COMPILE', 'CC', 'AR', 'RANLIB']) delete env[v];
    await run(join(src, 'configure'), muslConfigureArgs(ctx.board.crossCompile, ctx.board.cpuFlags), {
      cwd: src,
      log,
      env,
      what: 'musl configure',
    });
    const arch = muslArchOf(readFileSync(join(src, 'config.mak'), 'utf8'));
    // The router userspace is o32 hard float, as Debian's mipsel musl was (the kernel emulates the FPU).
    if (arch.endsWith('-sf')) {
      throw new XipError(
        `musl configured for ${arch} (soft float): ${ctx.board.crossCompile}gcc ${ctx.board.cpuFlags.join(' ')} does not default to hard float; ` +
          `the router userspace is built hard float (o32): use a hard-float cross compiler such as Debian's ${ctx.board.hostPackages.gcc}`,
      );
    }
    await run('make', [`-j${jobs()}`], { cwd: src, log, env, what: 'musl make' });
    const done = join(work, 'result');
    await run('make', ['install', `DESTDIR=${done}`], { cwd: src, log, env, what: 'musl make install' });
    const inf: MuslInfo = {
      package: pin.libc.package,
      version: pin.libc.version,
      files: pin.libc.files,
      target: muslTarget(ctx.board.crossCompile),
      arch,
    };
    writeFileAtomic(join(done, 'musl.json'), `${JSON.stringify(inf, null, 2)}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(done, out);
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    info(`musl ${upstreamVersion(inf.version)} (Debian source ${inf.package} ${inf.version}) for ${inf.target}, ${arch}: built in ${secs} s`);
    return { root: out, info: inf };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Fetch, configure and build busybox for the board (cached under
 * build/lwrt/busybox-<key>/). Returns the stripped binary and what it is.
 */
export async function ensureBusybox(ctx: BuildContext): Promise<BusyboxBuild> {
  const pinFile = pinPath(ctx.repo);
  const pin = readPin(ctx.repo);
  const key = busyboxKey(ctx.repo, ctx.board.crossCompile, ctx.board.cpuFlags);
  const base = join(ctx.buildDir, 'lwrt');
  const out = join(base, `busybox-${key}`);
  const infoPath = join(out, 'busybox.json');
  const binary = join(out, 'busybox');
  if (existsSync(infoPath) && existsSync(binary)) {
    const inf = JSON.parse(readFileSync(infoPath, 'utf8')) as BusyboxInfo;
    checkSha256(binary, sha256(readFileSync(binary)), inf.sha256, infoPath);
    return { binary, info: inf };
  }
  const log = join(base, `busybox-${key}.log`);
  mkdirSync(base, { recursive: true });
  writeFileSync(log, '');
  const downloads = join(base, 'downloads');
  await fetchPinned(pin, downloads, pinFile, log);
  const musl = await ensureMusl(ctx, pin, downloads);

  const work = join(base, `.busybox-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const src = join(work, 'src');
    await run('dpkg-source', ['--no-check', '-x', join(downloads, dscOf(pin.source)), src], {
      log,
      what: 'dpkg-source -x (busybox)',
    });
    const cc = muslCompiler(ctx, musl, work);

    const obj = join(work, 'obj');
    mkdirSync(obj);
    const env = { ...process.env, KCONFIG_NOTIMESTAMP: '1', LC_ALL: 'C' };
    const make = (args: string[], input?: string) =>
      run('make', ['-C', src, `O=${obj}`, `CROSS_COMPILE=${ctx.board.crossCompile}`, `CC=${cc}`, ...args], {
        log,
        env,
        input,
        what: `busybox make ${args.filter((a) => !a.startsWith('-')).join(' ')}`,
      });
    await make(['allnoconfig']);
    const fragment = readFileSync(configFragmentPath(ctx.repo), 'utf8');
    const dotConfig = join(obj, '.config');
    writeFileSync(dotConfig, mergeConfig(readFileSync(dotConfig, 'utf8'), fragment));
    // New questions get their defaults (an empty answer each).
    await make(['oldconfig'], '\n'.repeat(4000));
    const missing = missingFromConfig(readFileSync(dotConfig, 'utf8'), fragment);
    if (missing.length > 0) {
      throw badInput(`${configFragmentPath(ctx.repo)}: not accepted by busybox ${upstreamVersion(pin.source.version)}: ${missing.join(', ')}`);
    }
    await make([`-j${jobs()}`, `EXTRA_CFLAGS=${ctx.board.cpuFlags.join(' ')}`, 'busybox', 'busybox.links']);
    const bin = join(obj, 'busybox');
    const bytes = readFileSync(bin);
    // The binary must be a static program for the board: no interpreter.
    const why = staticProgramProblem(bytes, ctx.board);
    if (why) throw new XipError(`busybox ${why} (see ${log}): CONFIG_STATIC must stay set`);
    const applets = readFileSync(join(obj, 'busybox.links'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('/'))
      .sort();
    const inf: BusyboxInfo = {
      version: upstreamVersion(pin.source.version),
      source: { package: pin.source.package, version: pin.source.version, files: pin.source.files },
      libc: musl.info,
      sha256: sha256(bytes),
      size: bytes.length,
      applets,
    };
    const done = join(work, 'result');
    mkdirSync(done);
    writeFileAtomic(join(done, 'busybox'), bytes, 0o755);
    writeFileAtomic(join(done, 'busybox.json'), `${JSON.stringify(inf, null, 2)}\n`);
    writeFileAtomic(join(done, 'busybox.config'), readFileSync(dotConfig));
    rmSync(out, { recursive: true, force: true });
    renameSync(done, out);
    info(
      `busybox ${inf.version} (Debian source ${pin.source.package} ${pin.source.version}, ${musl.info.package} ${musl.info.version} ${musl.info.arch}): ${inf.size} bytes, sha256 ${inf.sha256}`,
    );
    return { binary, info: inf };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
