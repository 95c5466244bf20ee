import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import type { BuildContext } from '../context.ts';
import { EXIT, XipError, badInput } from '../errors.ts';
import { sha256, writeFileAtomic } from '../fsutil.ts';
import { info } from '../log.ts';
import { capture, run } from '../proc.ts';
import { hashFile } from '../stamp.ts';
import { jobs } from '../kernel/kbuild.ts';

/**
 * The router's busybox: Debian's busybox SOURCE package, configured with
 * only the applets the router needs (userspace/lwrt/busybox.config on top
 * of allnoconfig) and linked statically against Debian's musl for mipsel
 * with the gcc cross compiler. Debian's own busybox-static binary (2.3 MB,
 * 1.1 MB gzipped, glibc) does not fit the flash next to a networking
 * kernel; this one is about a sixth of that.
 *
 * Everything comes from Debian through apt-get, never installed into the
 * host: `apt-get source --download-only` (needs a deb-src entry) and
 * `apt-get download musl-dev:mipsel` (needs `dpkg --add-architecture
 * mipsel`), each file checked against the sha256 pinned in
 * userspace/lwrt/busybox.json. The result is cached per input hash under
 * build/lwrt/, so every variant and a second build reuse it.
 */

export const PinSchema = z.object({
  comment: z.string().optional(),
  source: z.object({
    package: z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/),
    version: z.string().regex(/^[0-9A-Za-z.+~:-]+$/),
    files: z.record(z.string().regex(/^[A-Za-z0-9_.+~-]+$/), z.string().regex(/^[0-9a-f]{64}$/)),
  }),
  libc: z.object({
    package: z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/),
    arch: z.string().regex(/^[a-z0-9]+$/),
    version: z.string().regex(/^[0-9A-Za-z.+~:-]+$/),
    file: z.string().regex(/^[A-Za-z0-9_.+~%-]+\.deb$/),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  }),
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
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw badInput(`${where}: not valid JSON (${(err as Error).message}); fix the file`);
  }
  const r = PinSchema.safeParse(data);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw badInput(`${where}: ${i.path.join('.') || '(top)'}: ${i.message}; fix the file`);
  }
  const dsc = Object.keys(r.data.source.files).filter((f) => f.endsWith('.dsc'));
  if (dsc.length !== 1) throw badInput(`${where}: source.files must list exactly one .dsc file`);
  return r.data;
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
  'the host needs the mipsel architecture and a deb-src entry for the Debian archive: ' +
  'dpkg --add-architecture mipsel, add "Types: deb-src" beside the deb entry in /etc/apt/sources.list.d/, apt-get update (.ci/run does this)';

/** Fetch (or reuse) the pinned source package and musl into dir; each file is checked against the pin. */
export async function fetchPinned(pin: BusyboxPin, dir: string, pinFile: string, log: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const need = Object.entries(pin.source.files);
  const have = (f: string) => existsSync(join(dir, f));
  if (!need.every(([f]) => have(f))) {
    const tmp = join(dir, `.apt-source.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      await run('apt-get', ['source', '--download-only', `${pin.source.package}=${pin.source.version}`], {
        cwd: tmp,
        log,
        what: `apt-get source ${pin.source.package}=${pin.source.version}`,
      }).catch((err: unknown) => {
        throw new XipError(`apt-get source ${pin.source.package}=${pin.source.version} failed (log ${log}): ${APT_HELP}`, {
          exitCode: EXIT.environment,
          details: err instanceof XipError ? err.details : [],
          cause: err,
        });
      });
      for (const [f, sum] of need) {
        const got = join(tmp, f);
        if (!existsSync(got)) {
          throw new XipError(`apt-get source fetched no ${f}: the archive has another build of ${pin.source.package}; update ${pinFile}`);
        }
        await verifyFile(got, sum, pinFile);
      }
      for (const [f] of need) renameSync(join(tmp, f), join(dir, f));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  for (const [f, sum] of need) await verifyFile(join(dir, f), sum, pinFile);
  const dscFile = need.find(([f]) => f.endsWith('.dsc'))![0];
  const v = parseDscVersion(readFileSync(join(dir, dscFile), 'utf8'));
  if (v !== pin.source.version) throw new XipError(`${dscFile}: version ${v ?? '(none)'} is not ${pin.source.version} of ${pinFile}`);

  const deb = join(dir, pin.libc.file);
  if (!existsSync(deb)) {
    const spec = `${pin.libc.package}:${pin.libc.arch}=${pin.libc.version}`;
    const tmp = join(dir, `.apt-download.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      await run('apt-get', ['download', spec], { cwd: tmp, log, what: `apt-get download ${spec}` }).catch((err: unknown) => {
        throw new XipError(`apt-get download ${spec} failed (log ${log}): ${APT_HELP}`, {
          exitCode: EXIT.environment,
          details: err instanceof XipError ? err.details : [],
          cause: err,
        });
      });
      const got = readdirSync(tmp).filter((f) => f.endsWith('.deb'));
      if (got.length !== 1) throw new XipError(`apt-get download ${spec} left ${got.length} .deb files, expected one`);
      await verifyFile(join(tmp, got[0]!), pin.libc.sha256, pinFile);
      renameSync(join(tmp, got[0]!), deb);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  await verifyFile(deb, pin.libc.sha256, pinFile);
}

/** Apply a fragment (CONFIG_X=y / "# CONFIG_X is not set" lines) to a .config text. */
export function mergeConfig(config: string, fragment: string): string {
  let out = config.endsWith('\n') || config === '' ? config : `${config}\n`;
  for (const line of fragment.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=.*$/.exec(line);
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    const sym = set?.[1] ?? unset?.[1];
    if (!sym) continue;
    const re = new RegExp(`^(# ${sym} is not set|${sym}=.*)$`, 'm');
    out = re.test(out) ? out.replace(re, () => line) : `${out}${line}\n`;
  }
  return out;
}

/** Fragment lines whose value is not in the final .config. */
export function missingFromConfig(final: string, fragment: string): string[] {
  const lines = new Set(final.split('\n'));
  return fragment
    .split('\n')
    .filter((l) => /^CONFIG_[A-Za-z0-9_]+=/.test(l) || /^# CONFIG_[A-Za-z0-9_]+ is not set$/.test(l))
    .filter((l) => {
      if (lines.has(l)) return false;
      const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(l);
      return !(unset && ![...lines].some((x) => x.startsWith(`${unset[1]}=`)));
    });
}

/** gcc specs that compile and link statically against the extracted musl (paths from the pin's package). */
export function muslSpecs(muslRoot: string, khdr: string, triple = 'mipsel-linux-musl'): string {
  const inc = join(muslRoot, 'usr', 'include', triple);
  const lib = join(muslRoot, 'usr', 'lib', triple);
  const cpp = `-nostdinc -isystem ${inc} -isystem ${khdr} -isystem include%s`;
  return [
    '%rename cpp_options old_cpp_options',
    '',
    '*cpp_options:',
    `${cpp} %(old_cpp_options)`,
    '',
    '*cc1:',
    `%(cc1_cpu) ${cpp}`,
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
    '-nostdlib -static',
    '',
  ].join('\n');
}

export interface BusyboxInfo {
  /** Upstream version, e.g. 1.35.0. */
  version: string;
  /** The Debian source package it was built from. */
  source: { package: string; version: string; files: Record<string, string> };
  libc: { package: string; arch: string; version: string; sha256: string };
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

/** Inputs that decide the busybox binary (its cache key). */
export function busyboxKey(repo: string, crossCompile: string, cpuFlags: readonly string[]): string {
  const parts = [
    readFileSync(pinPath(repo), 'utf8'),
    readFileSync(configFragmentPath(repo), 'utf8'),
    readFileSync(join(repo, 'src', 'userspace', 'busybox.ts'), 'utf8'),
    crossCompile,
    cpuFlags.join(' '),
  ];
  return sha256(parts.join('\0')).slice(0, 16);
}

/** The host directories with the kernel's UAPI headers for the target (from the cross libc's dev package). */
function kernelHeaderDirs(crossCompile: string): string {
  const dir = join('/usr', crossCompile.replace(/-$/, ''), 'include');
  if (!existsSync(join(dir, 'linux', 'if.h'))) {
    throw new XipError(`${dir}/linux not found: install linux-libc-dev-mipsel-cross (comes with gcc-mipsel-linux-gnu)`, {
      exitCode: EXIT.environment,
    });
  }
  return dir;
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

  const work = join(base, `.busybox-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const dsc = Object.keys(pin.source.files).find((f) => f.endsWith('.dsc'))!;
    const src = join(work, 'src');
    await run('dpkg-source', ['--no-check', '-x', join(downloads, dsc), src], {
      log,
      what: 'dpkg-source -x (busybox)',
    });
    const musl = join(work, 'musl');
    await run('dpkg-deb', ['-x', join(downloads, pin.libc.file), musl], { log, what: `dpkg-deb -x ${pin.libc.file}` });
    // Only the kernel's UAPI directories of the cross headers: the rest is glibc's.
    const khdr = join(work, 'khdr');
    mkdirSync(khdr);
    const hdrs = kernelHeaderDirs(ctx.board.crossCompile);
    for (const d of ['linux', 'asm', 'asm-generic', 'mtd']) {
      if (existsSync(join(hdrs, d))) symlinkSync(join(hdrs, d), join(khdr, d));
    }
    const specs = join(work, 'musl.specs');
    writeFileSync(specs, muslSpecs(musl, khdr));

    const obj = join(work, 'obj');
    mkdirSync(obj);
    const env = { ...process.env, KCONFIG_NOTIMESTAMP: '1', LC_ALL: 'C' };
    const make = (args: string[], input?: string) =>
      run('make', ['-C', src, `O=${obj}`, `CROSS_COMPILE=${ctx.board.crossCompile}`, `CC=${ctx.board.crossCompile}gcc -specs=${specs}`, ...args], {
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
    // The binary must be a static program for the board: no interpreter.
    const hdr = capture(`${ctx.board.crossCompile}readelf`, ['-lh', bin], { what: 'readelf busybox' });
    if (/Requesting program interpreter/.test(hdr) || !/Type:\s+EXEC/.test(hdr)) {
      throw new XipError(`busybox built as a dynamic program (see ${log}): CONFIG_STATIC must stay set`);
    }
    const applets = readFileSync(join(obj, 'busybox.links'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('/'))
      .sort();
    const bytes = readFileSync(bin);
    const inf: BusyboxInfo = {
      version: upstreamVersion(pin.source.version),
      source: { package: pin.source.package, version: pin.source.version, files: pin.source.files },
      libc: { package: pin.libc.package, arch: pin.libc.arch, version: pin.libc.version, sha256: pin.libc.sha256 },
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
    info(`busybox ${inf.version} (Debian ${pin.source.package} ${pin.source.version}, ${pin.libc.package}:${pin.libc.arch} ${pin.libc.version}): ${inf.size} bytes, sha256 ${inf.sha256}`);
    return { binary, info: inf };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
