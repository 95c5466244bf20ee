import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { EXIT, XipError } from './errors.ts';
import { info } from './log.ts';
import { capture, run } from './proc.ts';
import { DEBIAN_TARBALL } from './kernel/source.ts';

/**
 * Host tools the toolkit needs: what is found, with which version, and the
 * Debian package that provides each. `--install` installs the missing ones.
 */
export interface ToolCheck {
  name: string;
  /** Debian 12 package providing it. */
  pkg: string;
  /** Minimum version, or 'any'. */
  needed: string;
  probe: () => string | undefined;
  /** Only needed in some setups (e.g. the Debian tarball when KERNEL_SRC is set). */
  optional?: boolean;
  /** Not a package but apt configuration: how --install sets it up (pkg is then ''). */
  setup?: AptSetup;
}

/** apt configuration the router userspace needs to fetch Debian's mipsel parts. */
export type AptSetup = 'mipsel-architecture' | 'deb-src';

const SOURCES = '/etc/apt/sources.list';
const SOURCES_D = '/etc/apt/sources.list.d';
const DEB_SRC_FILE = `${SOURCES_D}/xip-deb-src.sources`;

/** Is there a deb-src entry (one-line or deb822 format) in apt's sources? */
export function hasDebSrc(files: readonly { name: string; text: string }[]): boolean {
  return files.some(({ text }) => /^\s*deb-src\s/m.test(text) || /^Types:.*\bdeb-src\b/m.test(text));
}

/**
 * A deb-src entry for the same archive as the deb entries: deb822 stanzas of
 * debian.sources with Types: deb-src (or deb-src lines from sources.list).
 */
export function debSrcFrom(files: readonly { name: string; text: string }[]): { path: string; text: string } | undefined {
  const deb822 = files.find((x) => x.name.endsWith('.sources') && /^Types:.*\bdeb\b/m.test(x.text));
  if (deb822) return { path: DEB_SRC_FILE, text: deb822.text.replace(/^Types:.*$/gm, 'Types: deb-src') };
  const lines = files.flatMap((x) => (x.name.endsWith('.list') ? x.text.split('\n') : []));
  const src = lines.filter((l) => /^deb\s/.test(l)).map((l) => l.replace(/^deb\s/, 'deb-src '));
  return src.length > 0 ? { path: `${SOURCES_D}/xip-deb-src.list`, text: `${src.join('\n')}\n` } : undefined;
}

function aptSourceFiles(): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  if (existsSync(SOURCES)) out.push({ name: SOURCES, text: readFileSync(SOURCES, 'utf8') });
  if (existsSync(SOURCES_D)) {
    for (const n of readdirSync(SOURCES_D).sort()) {
      if (n.endsWith('.list') || n.endsWith('.sources')) out.push({ name: `${SOURCES_D}/${n}`, text: readFileSync(`${SOURCES_D}/${n}`, 'utf8') });
    }
  }
  return out;
}

function foreignArchs(): string[] {
  try {
    return capture('dpkg', ['--print-foreign-architectures']).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export interface ToolStatus {
  name: string;
  pkg: string;
  needed: string;
  /** Version found, 'present' when it has none, undefined when missing. */
  found?: string;
  ok: boolean;
  problem?: string;
}

/** First dotted version number in a tool's --version output. */
export function parseVersion(text: string): string | undefined {
  return /(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** a >= b for dotted numeric versions ('any' is always met). */
export function versionAtLeast(found: string, needed: string): boolean {
  if (needed === 'any') return true;
  const a = found.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = needed.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

function versionOf(cmd: string, args: string[] = ['--version']): string | undefined {
  try {
    const out = capture(cmd, args);
    return parseVersion(out.split('\n').find((l) => /\d+\.\d+/.test(l)) ?? '') ?? 'present';
  } catch (err) {
    if (err instanceof XipError && err.exitCode === EXIT.environment) return undefined;
    // It ran but did not like --version: still present.
    return 'present';
  }
}

/** The version of an installed Debian package, or undefined. */
function debVersion(pkg: string): string | undefined {
  try {
    const v = capture('dpkg-query', ['-W', '-f', '${Status}|${Version}', pkg]).trim();
    const [status, version] = v.split('|');
    return status?.endsWith('installed') && !status.includes('not-installed') ? version : undefined;
  } catch {
    return undefined;
  }
}

function headerVersion(header: string, pkg: string): string | undefined {
  if (!existsSync(header)) return undefined;
  return debVersion(pkg) ?? 'present';
}

function opensslVersion(): string | undefined {
  const h = '/usr/include/openssl/opensslv.h';
  if (!existsSync(h)) return undefined;
  const text = readFileSync(h, 'utf8');
  const major = /#\s*define\s+OPENSSL_VERSION_MAJOR\s+(\d+)/.exec(text)?.[1];
  const minor = /#\s*define\s+OPENSSL_VERSION_MINOR\s+(\d+)/.exec(text)?.[1];
  const patch = /#\s*define\s+OPENSSL_VERSION_PATCH\s+(\d+)/.exec(text)?.[1];
  if (major && minor) return `${major}.${minor}.${patch ?? 0}`;
  return parseVersion(/OPENSSL_VERSION_TEXT\s+"([^"]*)"/.exec(text)?.[1] ?? '') ?? 'present';
}

export function toolChecks(opts: { needDebianSource?: boolean } = {}): ToolCheck[] {
  return [
    // Minimums: Documentation/process/changes.rst of Linux 6.12, QEMU as tested.
    { name: 'clang', pkg: 'clang', needed: '13.0.1', probe: () => versionOf('clang') },
    { name: 'ld.lld', pkg: 'lld', needed: '13.0.1', probe: () => versionOf('ld.lld') },
    { name: 'llvm-objcopy (llvm)', pkg: 'llvm', needed: '13.0.1', probe: () => versionOf('llvm-objcopy') },
    { name: 'mipsel-linux-gnu-ld (binutils)', pkg: 'binutils-mipsel-linux-gnu', needed: '2.25', probe: () => versionOf('mipsel-linux-gnu-ld') },
    { name: 'mipsel-linux-gnu-gcc', pkg: 'gcc-mipsel-linux-gnu', needed: '5.1', probe: () => versionOf('mipsel-linux-gnu-gcc') },
    { name: 'gcc (host)', pkg: 'gcc', needed: '5.1', probe: () => versionOf('gcc') },
    { name: 'qemu-system-mipsel', pkg: 'qemu-system-mips', needed: '7.2', probe: () => versionOf('qemu-system-mipsel') },
    { name: 'make', pkg: 'make', needed: '4.0', probe: () => versionOf('make') },
    { name: 'flex', pkg: 'flex', needed: '2.5.35', probe: () => versionOf('flex') },
    { name: 'bison', pkg: 'bison', needed: '2.0', probe: () => versionOf('bison') },
    { name: 'bc', pkg: 'bc', needed: 'any', probe: () => versionOf('bc') },
    { name: 'cpio', pkg: 'cpio', needed: 'any', probe: () => versionOf('cpio') },
    { name: 'xz', pkg: 'xz-utils', needed: 'any', probe: () => versionOf('xz') },
    { name: 'tar', pkg: 'tar', needed: 'any', probe: () => versionOf('tar') },
    { name: 'patch', pkg: 'patch', needed: 'any', probe: () => versionOf('patch') },
    { name: 'C library headers (host)', pkg: 'libc6-dev', needed: 'any', probe: () => headerVersion('/usr/include/stdio.h', 'libc6-dev') },
    // The router userspace: busybox from Debian's source package, musl-dev:mipsel (src/userspace/busybox.ts).
    { name: 'dpkg-source (dpkg-dev)', pkg: 'dpkg-dev', needed: 'any', probe: () => versionOf('dpkg-source') },
    { name: 'bzip2', pkg: 'bzip2', needed: 'any', probe: () => (commandExists('bzip2') ? (debVersion('bzip2') ?? 'present') : undefined) },
    { name: 'dpkg architecture mipsel', pkg: '', needed: 'any', setup: 'mipsel-architecture', probe: () => (foreignArchs().includes('mipsel') ? 'present' : undefined) },
    { name: 'apt deb-src entry', pkg: '', needed: 'any', setup: 'deb-src', probe: () => (hasDebSrc(aptSourceFiles()) ? 'present' : undefined) },
    { name: 'libelf headers', pkg: 'libelf-dev', needed: 'any', probe: () => headerVersion('/usr/include/libelf.h', 'libelf-dev') },
    { name: 'openssl headers', pkg: 'libssl-dev', needed: '1.0.0', probe: opensslVersion },
    {
      name: `linux-source-6.12 (${DEBIAN_TARBALL})`,
      pkg: 'linux-source-6.12',
      needed: '6.12',
      optional: opts.needDebianSource === false,
      probe: () => (existsSync(DEBIAN_TARBALL) ? (debVersion('linux-source-6.12') ?? 'present') : undefined),
    },
  ];
}

export function checkTools(checks: readonly ToolCheck[]): ToolStatus[] {
  return checks.map((c) => {
    const found = c.probe();
    if (found === undefined) {
      return { name: c.name, pkg: c.pkg, needed: c.needed, ok: Boolean(c.optional), problem: 'missing' };
    }
    const ok = found === 'present' || versionAtLeast(found, c.needed);
    return { name: c.name, pkg: c.pkg, needed: c.needed, found, ok, problem: ok ? undefined : `too old (need ${c.needed})` };
  });
}

export function renderTable(rows: readonly ToolStatus[]): string {
  const head = ['tool', 'needed', 'found', 'status', 'package'];
  const body = rows.map((r) => [
    r.name,
    r.needed === 'any' ? 'any' : `>= ${r.needed}`,
    r.found ?? '-',
    r.ok ? (r.found ? 'ok' : 'not needed') : (r.problem ?? 'missing'),
    r.pkg || '(apt setup)',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}

/** Packages to install for the problems in rows (missing or too old). */
export function missingPackages(rows: readonly ToolStatus[]): string[] {
  return [...new Set(rows.filter((r) => !r.ok && r.pkg !== '').map((r) => r.pkg))];
}

/** apt configuration that is missing (rows without a package). */
export function missingSetup(rows: readonly ToolStatus[], checks: readonly ToolCheck[]): AptSetup[] {
  return checks.filter((c) => c.setup && rows.some((r) => r.name === c.name && !r.ok)).map((c) => c.setup!);
}

/** Say how to do by hand what --install would do for the setup items. */
export function setupHelp(items: readonly AptSetup[]): string {
  return items
    .map((i) => (i === 'mipsel-architecture' ? 'dpkg --add-architecture mipsel' : `add a deb-src entry for the Debian archive (e.g. ${DEB_SRC_FILE} with "Types: deb-src")`))
    .join('; ');
}

export function aptCommand(pkgs: readonly string[]): string[] {
  return ['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs];
}

/** How packages can be installed here: directly (root), through sudo, or not at all. */
export function installMethod(uid = process.getuid?.() ?? -1, hasSudo = commandExists('sudo')): 'root' | 'sudo' | 'none' {
  if (uid === 0) return 'root';
  return hasSudo ? 'sudo' : 'none';
}

function commandExists(cmd: string): boolean {
  try {
    capture('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

export interface DoctorOptions {
  install?: boolean;
  json?: boolean;
  needDebianSource?: boolean;
  /** For tests: the checks to run and how installing would work. */
  checks?: readonly ToolCheck[];
  method?: 'root' | 'sudo' | 'none';
}

/** `xip doctor`: returns the exit code. */
export async function doctor(o: DoctorOptions = {}): Promise<number> {
  const checks = () => o.checks ?? toolChecks({ needDebianSource: o.needDebianSource });
  let rows = checkTools(checks());
  let missing = missingPackages(rows);
  let setup = missingSetup(rows, checks());
  if (o.install && (missing.length > 0 || setup.length > 0)) {
    const method = o.method ?? installMethod();
    const apt = aptCommand(missing);
    if (method === 'none') {
      const todo = [setupHelp(setup), missing.length ? apt.join(' ') : ''].filter(Boolean).join('; then ');
      throw new XipError(`cannot install: not root and no sudo; as root: ${todo}`, { exitCode: EXIT.environment });
    }
    const pre = method === 'sudo' ? ['sudo'] : [];
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const asRoot = async (cmd: string[], what: string, input?: string) => {
      const [c, ...a] = [...pre, ...cmd];
      // tee echoes the file it writes: keep that out of the output.
      const onLine = input === undefined ? (l: string) => info(`  ${l}`) : undefined;
      await run(c!, a, { env, what, input, onLine, inheritStdin: method === 'sudo' && input === undefined });
    };
    for (const item of setup) {
      if (item === 'mipsel-architecture') {
        info('apt setup: dpkg --add-architecture mipsel');
        await asRoot(['dpkg', '--add-architecture', 'mipsel'], 'dpkg --add-architecture mipsel');
      } else {
        const entry = debSrcFrom(aptSourceFiles());
        if (!entry) throw new XipError(`no deb entry in ${SOURCES} or ${SOURCES_D} to derive a deb-src entry from: add one by hand`, { exitCode: EXIT.environment });
        info(`apt setup: ${entry.path} (deb-src for the same archive)`);
        await asRoot(['tee', entry.path], `write ${entry.path}`, entry.text);
      }
    }
    info(`installing: ${missing.join(' ') || '(nothing; apt configuration changed)'}`);
    await asRoot(['apt-get', 'update'], 'apt-get update');
    if (missing.length > 0) await asRoot(apt, 'apt-get install');
    rows = checkTools(checks());
    missing = missingPackages(rows);
    setup = missingSetup(rows, checks());
  }
  const ok = missing.length === 0 && setup.length === 0;
  if (o.json) process.stdout.write(`${JSON.stringify({ ok, tools: rows, missingPackages: missing, missingSetup: setup }, null, 2)}\n`);
  else process.stdout.write(`${renderTable(rows)}\n`);
  if (!ok) {
    const todo = [setupHelp(setup), missing.length ? aptCommand(missing).join(' ') : ''].filter(Boolean).join('; then ');
    if (!o.json) info(`missing: ${[...setup, ...missing].join(' ')}; fix with: ${todo} (or 'xip doctor --install')`);
    return EXIT.environment;
  }
  return EXIT.ok;
}
