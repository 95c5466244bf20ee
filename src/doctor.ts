import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { crossIncludeDir, crossTriple, type BoardData } from './boards/board.ts';
import { boardNames, getBoard } from './boards/index.ts';
import { EXIT, XipError } from './errors.ts';
import { info } from './log.ts';
import { capture, run } from './proc.ts';
import { DEBIAN_TARBALL } from './kernel/source.ts';
import { renderTable as table } from './text.ts';

/**
 * Host tools the toolkit needs: what is found, with which version, the
 * Debian package that provides each and why it is needed. `--install`
 * installs the missing ones, always with --no-install-recommends: every
 * package the build, the router userspace and the tests use is named here,
 * none comes only as somebody's Recommends. The same list serves Debian 12
 * and Debian 13 hosts.
 */
export interface ToolCheck {
  name: string;
  /** Debian package providing it (the same name on Debian 12 and 13). */
  pkg: string;
  /** Minimum version, or 'any'. */
  needed: string;
  /** What needs it, for the table. */
  why?: string;
  probe: () => string | undefined;
  /** Only needed in some setups (e.g. the Debian tarball when KERNEL_SRC is set). */
  optional?: boolean;
  /** Not a package but apt configuration: how --install sets it up (pkg is then ''). */
  setup?: AptSetup;
}

/** apt configuration the router userspace needs to fetch Debian's source packages. */
export type AptSetup = 'deb-src';

/**
 * The Debian release whose source packages (busybox, musl) the router
 * userspace is built from, on every host: one pinned set of sources for
 * Debian 12 and 13 alike. Source packages do not depend on the host's
 * release; a deb-src entry for this suite only serves `apt-get source`.
 */
export const SOURCE_SUITE = 'bookworm';

const SOURCES = '/etc/apt/sources.list';
const SOURCES_D = '/etc/apt/sources.list.d';
const DEB_SRC_FILE = `${SOURCES_D}/xip-deb-src.sources`;
const ARCHIVE_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

type SourceFile = { name: string; text: string };

/** One apt source entry (a deb822 stanza or a one-line entry). */
export interface AptEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** The entries of apt source files in either format (comments and disabled stanzas skipped). */
export function parseAptSources(files: readonly SourceFile[]): AptEntry[] {
  const out: AptEntry[] = [];
  for (const { name, text } of files) {
    if (name.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => {
          const m = new RegExp(`^${k}:[ \\t]*(.*)$`, 'mi').exec(stanza);
          return m?.[1]?.trim();
        };
        if (!field('Types') || /^no$/i.test(field('Enabled') ?? '')) continue;
        const words = (k: string) => (field(k) ?? '').split(/\s+/).filter(Boolean);
        out.push({ types: words('Types'), uris: words('URIs'), suites: words('Suites'), components: words('Components'), signedBy: field('Signed-By') });
      }
    } else {
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
        if (!m) continue;
        const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(m[2] ?? '')?.[1];
        out.push({ types: [m[1]!], uris: [m[3]!], suites: [m[4]!], components: (m[5] ?? '').split(/\s+/).filter(Boolean), signedBy });
      }
    }
  }
  return out;
}

/** Is there a deb-src entry for `suite` (main component)? */
export function hasDebSrc(files: readonly SourceFile[], suite = SOURCE_SUITE): boolean {
  return parseAptSources(files).some((e) => e.types.includes('deb-src') && e.suites.includes(suite) && e.components.includes('main'));
}

/**
 * A deb-src entry for `suite` from the same Debian archive as the host's
 * deb entries (the first one that is not the security archive), in deb822
 * form, with the same key.
 */
/**
 * The host's Debian archive entry: the first deb entry naming a Debian
 * release suite (its -updates may sit beside it; the security archive's
 * suites are all -security, so it is never this one).
 */
export function debianArchive(entries: readonly AptEntry[]): AptEntry | undefined {
  const release = /^(bookworm|trixie|forky|sid|stable|testing|oldstable|unstable)$/;
  return entries.find((e) => e.types.includes('deb') && e.uris.length > 0 && !e.uris[0]!.includes('security') && e.suites.some((x) => release.test(x)));
}

export function debSrcFrom(files: readonly SourceFile[], suite = SOURCE_SUITE, keyring = existsSync(ARCHIVE_KEYRING) ? ARCHIVE_KEYRING : undefined): { path: string; text: string } | undefined {
  const archive = debianArchive(parseAptSources(files));
  if (!archive) return undefined;
  const signedBy = archive.signedBy ?? keyring;
  const lines = ['Types: deb-src', `URIs: ${archive.uris[0]}`, `Suites: ${suite}`, 'Components: main', ...(signedBy ? [`Signed-By: ${signedBy}`] : [])];
  return { path: DEB_SRC_FILE, text: `# Written by xip doctor: Debian ${suite} source packages (busybox, musl) for the router userspace\n${lines.join('\n')}\n` };
}

/** The host's apt source files (sources.list and sources.list.d/*.list|*.sources). */
export function aptSourceFiles(): SourceFile[] {
  const out: SourceFile[] = [];
  if (existsSync(SOURCES)) out.push({ name: SOURCES, text: readFileSync(SOURCES, 'utf8') });
  if (existsSync(SOURCES_D)) {
    for (const n of readdirSync(SOURCES_D).sort()) {
      if (n.endsWith('.list') || n.endsWith('.sources')) out.push({ name: `${SOURCES_D}/${n}`, text: readFileSync(`${SOURCES_D}/${n}`, 'utf8') });
    }
  }
  return out;
}

export interface ToolStatus {
  name: string;
  pkg: string;
  needed: string;
  why?: string;
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

export interface CheckGroups {
  /** The Debian kernel tarball is needed (no KERNEL_SRC / KERNEL_TARBALL given). */
  needDebianSource?: boolean;
  /** `make fresh-check`: debootstrap and git on the host. */
  freshCheck?: boolean;
  /** `make test`: the browser the HTML size report is rendered in (test/integration-size.test.ts). */
  browser?: boolean;
}

/** A check whose probe is given. */
function check(name: string, pkg: string, needed: string, why: string, probe: () => string | undefined): ToolCheck {
  return { name, pkg, needed, why, probe };
}

/** A command whose --version output must show at least `needed`. */
function commandCheck(name: string, pkg: string, needed: string, why: string): ToolCheck {
  return check(name, pkg, needed, why, () => versionOf(name));
}

/** A command that must be there, any version (the package's version is shown). */
function presentCheck(name: string, pkg: string, why: string): ToolCheck {
  return check(name, pkg, 'any', why, () => (commandExists(name) ? (debVersion(pkg) ?? 'present') : undefined));
}

/** Every registered board (the board-wide data is read; the loader does not matter). */
export function registeredBoards(): BoardData[] {
  return boardNames().map((name) => getBoard(name));
}

/** A board's cross toolchain: binutils, gcc and the kernel's UAPI headers for its triple, from its Debian packages. */
function crossToolChecks(b: BoardData): ToolCheck[] {
  const p = b.hostPackages;
  const arch = crossTriple(b).split('-')[0];
  const header = `${crossIncludeDir(b)}/linux/if.h`;
  return [
    commandCheck(`${b.crossCompile}ld`, p.binutils, '2.25', 'assembler and linker of the kernel and shim'),
    commandCheck(`${b.crossCompile}gcc`, p.gcc, '5.1', 'TOOLCHAIN=gcc kernel; musl and busybox of the router'),
    check(`${arch} kernel UAPI headers`, p.uapiHeaders, 'any', 'linux/*.h for busybox (only a Recommends of the cross gcc)', () => headerVersion(header, p.uapiHeaders)),
  ];
}

/** The QEMU system emulator a board boots in. */
function qemuChecks(b: BoardData): ToolCheck[] {
  // A real board is not booted here: no emulator to check.
  if (!b.qemu || !b.hostPackages.qemu) return [];
  return [commandCheck(b.qemu.binary, b.hostPackages.qemu, '7.2', 'boots and tests (no firmware package needed)')];
}

/**
 * The checks of `of` for every board, one per tool: boards that need the
 * same tool from the same package share its row, whose why starts with the
 * boards that need it unless all of them do.
 */
function perBoard(boards: readonly BoardData[], of: (b: BoardData) => ToolCheck[]): ToolCheck[] {
  const rows = new Map<string, { check: ToolCheck; boards: Set<string> }>();
  for (const b of boards) {
    for (const c of of(b)) {
      const key = `${c.name}\n${c.pkg}`;
      const row = rows.get(key) ?? { check: c, boards: new Set<string>() };
      row.boards.add(b.name);
      rows.set(key, row);
    }
  }
  const all = new Set(boards.map((b) => b.name)).size;
  return [...rows.values()].map(({ check: c, boards: by }) => (by.size === all ? c : { ...c, why: `${[...by].join(', ')}: ${c.why}` }));
}

/** The host tools needed to build for and boot `boards`, with the groups of `opts`. */
export function requirementsFor(boards: readonly BoardData[], opts: CheckGroups = {}): ToolCheck[] {
  return [
    // Minimums: Documentation/process/changes.rst of Linux 6.12, QEMU as tested.
    commandCheck('clang', 'clang', '13.0.1', 'kernel, shim and PID 1 (TOOLCHAIN=clang, the default)'),
    commandCheck('ld.lld', 'lld', '13.0.1', 'links the PID 1 and test programs built with clang'),
    check('llvm-objcopy (llvm)', 'llvm', '13.0.1', 'llvm-objcopy/readelf/objdump for the clang kernel and verify tests', () => versionOf('llvm-objcopy')),
    ...perBoard(boards, crossToolChecks),
    commandCheck('gcc', 'gcc', '5.1', "the kernel's host programs (scripts/, kconfig)"),
    check('C library headers (host)', 'libc6-dev', 'any', "the kernel's host programs", () => headerVersion('/usr/include/stdio.h', 'libc6-dev')),
    ...perBoard(boards, qemuChecks),
    commandCheck('make', 'make', '4.0', 'kernel build'),
    commandCheck('flex', 'flex', '2.5.35', 'kernel build (kconfig, dtc)'),
    commandCheck('bison', 'bison', '2.0', 'kernel build (kconfig, dtc)'),
    commandCheck('bc', 'bc', 'any', 'kernel build (timeconst)'),
    commandCheck('cpio', 'cpio', 'any', 'initramfs checks'),
    commandCheck('xz', 'xz-utils', 'any', 'the Debian kernel tarball'),
    commandCheck('tar', 'tar', 'any', 'kernel source'),
    commandCheck('patch', 'patch', 'any', 'applies kernel/patches/'),
    check('libelf headers', 'libelf-dev', 'any', 'kernel build (host tools)', () => headerVersion('/usr/include/libelf.h', 'libelf-dev')),
    check('openssl headers', 'libssl-dev', '1.0.0', 'kernel build (certs, sign-file)', opensslVersion),
    // The router userspace: busybox and musl from Debian's source packages (src/userspace/busybox.ts).
    check('dpkg-source (dpkg-dev)', 'dpkg-dev', 'any', 'apt-get source and unpacking busybox/musl', () => versionOf('dpkg-source')),
    presentCheck('bzip2', 'bzip2', "busybox's source tarball"),
    {
      name: `apt deb-src entry for ${SOURCE_SUITE}`,
      pkg: '',
      needed: 'any',
      why: `apt-get source of the pinned busybox and musl (Debian ${SOURCE_SUITE})`,
      setup: 'deb-src',
      probe: () => (hasDebSrc(aptSourceFiles()) ? 'present' : undefined),
    },
    // The tests: QEMU runs with its firmware directories hidden (src/qemu/firmware.ts).
    presentCheck('unshare', 'util-linux', 'tests: boots with QEMU firmware hidden'),
    presentCheck('mount', 'mount', 'tests: boots with QEMU firmware hidden'),
    // The router end to end (test/integration-network.test.ts): network namespaces, taps, veths and bridges.
    presentCheck('ip', 'iproute2', 'tests: the router between network namespaces'),
    // LOADER=uboot fetches the pinned u-boot-qemu with apt-get download (never installed); its tests read the uImage with u-boot-tools.
    presentCheck('dumpimage', 'u-boot-tools', 'tests: the XIP uImage read back by dumpimage -l (LOADER=uboot)'),
    // The cramfs writer (root filesystem in flash) is checked against util-linux's fsck.cramfs and mkfs.cramfs.
    presentCheck('fsck.cramfs', 'util-linux-extra', 'tests: the cramfs writer checked by fsck.cramfs / mkfs.cramfs'),
    presentCheck('dtc', 'device-tree-compiler', 'tests: the device tree the boot shim passes, decompiled by dtc'),
    {
      ...check(`linux-source-6.12 (${DEBIAN_TARBALL})`, 'linux-source-6.12', '6.12', 'the kernel source (unless KERNEL_SRC or KERNEL_TARBALL)', () =>
        existsSync(DEBIAN_TARBALL) ? (debVersion('linux-source-6.12') ?? 'present') : undefined),
      optional: opts.needDebianSource === false,
    },
    // The HTML size report is checked in a real browser; only the tests need one, so only they install it.
    { ...presentCheck('chromium', 'chromium', 'tests: the HTML size report rendered headless (make test)'), optional: !opts.browser },
    { ...check('DejaVu fonts', 'fonts-dejavu-core', 'any', 'tests: text in the size report screenshot (chromium brings no font)', () => debVersion('fonts-dejavu-core')), optional: !opts.browser },
    { ...commandCheck('git', 'git', 'any', 'make fresh-check (a clean clone), build-time bench'), optional: !opts.freshCheck },
    { ...commandCheck('debootstrap', 'debootstrap', 'any', 'make fresh-check (a throwaway Debian root)'), optional: !opts.freshCheck },
  ];
}

/** The host tools every registered board needs, with the groups of `opts`. */
export function toolChecks(opts: CheckGroups = {}): ToolCheck[] {
  return requirementsFor(registeredBoards(), opts);
}

export function checkTools(checks: readonly ToolCheck[]): ToolStatus[] {
  return checks.map((c) => {
    const found = c.probe();
    if (found === undefined) {
      return { name: c.name, pkg: c.pkg, needed: c.needed, why: c.why, ok: Boolean(c.optional), problem: 'missing' };
    }
    const ok = found === 'present' || versionAtLeast(found, c.needed);
    return { name: c.name, pkg: c.pkg, needed: c.needed, why: c.why, found, ok, problem: ok ? undefined : `too old (need ${c.needed})` };
  });
}

export function renderTable(rows: readonly ToolStatus[]): string {
  const head = ['tool', 'needed', 'found', 'status', 'package', 'why'];
  const body = rows.map((r) => [
    r.name,
    r.needed === 'any' ? 'any' : `>= ${r.needed}`,
    r.found ?? '-',
    r.ok ? (r.found ? 'ok' : 'not needed') : (r.problem ?? 'missing'),
    r.pkg || '(apt setup)',
    r.why ?? '',
  ]);
  return table(head, body);
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
  return items.map(() => `add a deb-src entry for Debian ${SOURCE_SUITE} main (e.g. ${DEB_SRC_FILE}: "Types: deb-src", your archive's URIs, "Suites: ${SOURCE_SUITE}") and apt-get update`).join('; ');
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
  /** Also what `make fresh-check` needs on the host. */
  freshCheck?: boolean;
  /** Also the browser `make test` renders the size report in. */
  browser?: boolean;
  /** For tests: the checks to run and how installing would work. */
  checks?: readonly ToolCheck[];
  method?: 'root' | 'sudo' | 'none';
}

/** `xip doctor`: returns the exit code. */
export async function doctor(o: DoctorOptions = {}): Promise<number> {
  const checks = () => o.checks ?? toolChecks({ needDebianSource: o.needDebianSource, freshCheck: o.freshCheck, browser: o.browser });
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
    if (setup.includes('deb-src')) {
      const entry = debSrcFrom(aptSourceFiles());
      if (!entry) throw new XipError(`no deb entry in ${SOURCES} or ${SOURCES_D} to derive a deb-src entry from: ${setupHelp(setup)}`, { exitCode: EXIT.environment });
      info(`apt setup: ${entry.path} (deb-src for Debian ${SOURCE_SUITE} from the same archive)`);
      await asRoot(['tee', entry.path], `write ${entry.path}`, entry.text);
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
