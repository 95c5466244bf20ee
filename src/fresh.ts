import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { BoardData } from './boards/board.ts';
import { SKIP_BOARDS_ENV, skippedBoards } from './boards/index.ts';
import { SKIP_SUITES_ENV, skippedSuites } from './testskip.ts';
import { POWERCUT_RUNS_ENV, powercutRuns } from './settings/powercut.ts';
import { aptSourceFiles, debianArchive, parseAptSources, registeredBoards, type AptEntry } from './doctor.ts';
import { EXIT, XipError, badInput } from './errors.ts';
import { writeFileAtomic } from './fsutil.ts';
import { info, warn } from './log.ts';
import { addCleanup, capture, run } from './proc.ts';

/**
 * `make fresh-check DEBIAN=12|13`: the README's two commands on a machine
 * that has nothing but the base system. A throwaway root is made with
 * `debootstrap --variant=minbase` from the Debian archive the host's apt
 * uses; a clean clone of the repository (HEAD: no build directories, no
 * node_modules, nothing uncommitted) goes in; only what the README tells a
 * user to install before the first command is installed; then `make` and
 * `make test` run inside it. Mounts and every process in the root are
 * cleaned up on success, failure and interruption.
 */

export interface DebianRelease {
  version: '12' | '13';
  codename: string;
  /** README's prerequisites for this host, as apt packages (no Recommends). */
  prerequisites: string[];
  /** How Node 20 gets there: Debian's own package, or the host's copied in (Debian 12 ships Node 18). */
  node: 'debian' | 'host';
}

export const RELEASES: Record<string, DebianRelease> = {
  '12': { version: '12', codename: 'bookworm', prerequisites: ['make', 'git', 'ca-certificates'], node: 'host' },
  '13': { version: '13', codename: 'trixie', prerequisites: ['nodejs', 'npm', 'make', 'git', 'ca-certificates'], node: 'debian' },
};

export function releaseOf(v: string | undefined): DebianRelease {
  const r = RELEASES[(v ?? '').trim()];
  if (!r) throw badInput(`DEBIAN='${v ?? ''}': give the Debian release to check, 12 or 13 (make fresh-check DEBIAN=13)`);
  return r;
}

/** The Debian archive (and security archive) URIs of the host's apt sources. */
export function archivesOf(entries: readonly AptEntry[]): { main: string; security?: string } {
  const main = debianArchive(entries);
  if (!main) throw new XipError('no Debian archive in /etc/apt/sources.list(.d): fresh-check builds its root from the archive the host uses', { exitCode: EXIT.environment });
  const sec = entries.find((e) => e.types.includes('deb') && e.suites.some((s) => s.endsWith('-security')));
  return { main: main.uris[0]!, security: sec?.uris[0] };
}

/** The apt sources of the fresh root: the release, its updates and its security suite, from the host's archives. */
export function rootSources(codename: string, a: { main: string; security?: string }): string {
  const key = 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg';
  const stanzas = [`Types: deb\nURIs: ${a.main}\nSuites: ${codename} ${codename}-updates\nComponents: main\n${key}\n`];
  if (a.security) stanzas.push(`Types: deb\nURIs: ${a.security}\nSuites: ${codename}-security\nComponents: main\n${key}\n`);
  return stanzas.join('\n');
}

/** The numbers of a node test run's closing lines (ℹ tests N, ℹ pass N, ...). */
export function testSummary(lines: readonly string[]): { tests: number; pass: number; fail: number; skipped: number; cancelled: number } | undefined {
  const n = (k: string) => {
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = new RegExp(`^\\S*\\s*${k} (\\d+)\\s*$`).exec(lines[i]!.trim());
      if (m) return Number(m[1]);
    }
    return undefined;
  };
  const tests = n('tests');
  const pass = n('pass');
  const fail = n('fail');
  if (tests === undefined || pass === undefined || fail === undefined) return undefined;
  return { tests, pass, fail, skipped: n('skipped') ?? 0, cancelled: n('cancelled') ?? 0 };
}

/** Processes whose root directory is `root` or below it (they run inside the chroot). */
export function processesIn(root: string, procDir = '/proc'): number[] {
  const out: number[] = [];
  for (const e of readdirSync(procDir)) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const r = readlinkSync(join(procDir, e, 'root'));
      if (r === root || r.startsWith(`${root}/`)) out.push(Number(e));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** Mount points at or below `root`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(root: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return mountinfo
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((m) => m === root || m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stop every process in the root (TERM, then KILL), then unmount everything below it. */
export async function releaseRoot(root: string): Promise<void> {
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = processesIn(root);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        /* already gone */
      }
    }
    for (let i = 0; i < 30 && processesIn(root).length > 0; i++) await sleep(100);
  }
  for (const m of mountsUnder(root)) {
    const r = spawnSync('umount', [m], { stdio: 'ignore' });
    if (r.status !== 0) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  }
  const left = mountsUnder(root);
  if (left.length > 0) throw new XipError(`could not unmount ${left.join(', ')}: unmount them by hand (umount -l)`, { exitCode: EXIT.environment });
}

export interface FreshOptions {
  repo: string;
  release: DebianRelease;
  /** Where the root and logs go (default <repo>/build/fresh/debian-N). */
  workDir?: string;
  /** Keep the root after the run (for a look inside); mounts are still removed. */
  keep?: boolean;
  /** Per README command (default 90 minutes). */
  timeoutMs?: number;
}

export interface FreshResult {
  debian: string;
  commit: string;
  ok: boolean;
  summary?: ReturnType<typeof testSummary>;
  seconds: Record<string, number>;
  versions: Record<string, string>;
  logs: string;
  date: string;
  failure?: string;
  /** Boards left out of make test by $XIP_TEST_SKIP_BOARDS (their tests report skipped). */
  skippedBoards?: string[];
  /** malta suites left out by $XIP_TEST_SKIP_SUITES (each reports one skipped test). */
  skippedSuites?: string[];
  /** $XIP_POWERCUT_RUNS, when it was set: the settings test's number of power cuts. */
  powercutRuns?: number;
}

/** Files of the host's apt configuration that reach the archive (Acquire:: settings: proxies, validity). */
function aptNetworkConfig(): string[] {
  const dir = '/etc/apt/apt.conf.d';
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile() && /^\s*Acquire::/m.test(readFileSync(f, 'utf8')));
}

/** The host's npm configuration files and the CA file they name (a registry behind a proxy needs it). */
function npmConfig(): { files: string[]; cafile?: string } {
  const home = process.env.HOME ?? '/root';
  const files = [join(home, '.npmrc'), '/etc/npmrc', '/usr/etc/npmrc'].filter((f) => existsSync(f));
  let cafile: string | undefined;
  for (const f of files) {
    const m = /^\s*cafile\s*=\s*(.+?)\s*$/m.exec(readFileSync(f, 'utf8'));
    if (m?.[1] && existsSync(m[1])) cafile = m[1];
  }
  return { files, cafile };
}

const ROOT_CA = '/etc/xip-fresh-check/npm-ca.crt';

/** Copy a host file into the root (at the same path unless given). */
function copyInto(root: string, hostPath: string, rootPath = hostPath): void {
  mkdirSync(dirname(join(root, rootPath)), { recursive: true });
  copyFileSync(hostPath, join(root, rootPath));
}

function writeInto(root: string, rootPath: string, text: string): void {
  mkdirSync(dirname(join(root, rootPath)), { recursive: true });
  writeFileSync(join(root, rootPath), text);
}

/** The clean environment of a command run inside the root, as a login shell of root would have it. */
function rootEnv(tests: Record<string, string>): string[] {
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb', ...tests };
  if (process.env.CI) env.CI = process.env.CI;
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * What the fresh-check result records of the root's tools: a name and the
 * shell command that prints its version on one line. The boards' cross
 * gcc, binutils and QEMU come once per command; when boards use different
 * ones, each is named by its command.
 */
export function versionProbes(boards: readonly BoardData[]): Array<[string, string]> {
  const perBoard = (name: string, cmds: string[]): Array<[string, string]> => {
    const unique = [...new Set(cmds)];
    return unique.map((c) => [unique.length === 1 ? name : c, `${c} --version | head -1`]);
  };
  return [
    ['node', 'node --version'],
    ['clang', 'clang --version | head -1'],
    ...perBoard('gcc', boards.map((b) => `${b.crossCompile}gcc`)),
    ...perBoard('binutils', boards.map((b) => `${b.crossCompile}ld`)),
    ...perBoard('qemu', boards.flatMap((b) => (b.qemu ? [b.qemu.binary] : []))),
    ['linux-source-6.12', "dpkg-query -W -f '${Version}\\n' linux-source-6.12"],
  ];
}

export async function freshCheck(o: FreshOptions): Promise<FreshResult> {
  if (process.getuid?.() !== 0) {
    throw new XipError('fresh-check needs root (debootstrap, chroot and mounts): run it as root, e.g. sudo make fresh-check', { exitCode: EXIT.environment });
  }
  // A wrong board or suite name, or a wrong number of power cuts: one line, before any work.
  const skipped = skippedBoards();
  const suites = skippedSuites();
  const cuts = process.env[POWERCUT_RUNS_ENV] ? powercutRuns() : undefined;
  // The test settings the root's make test gets, checked once here.
  const tests: Record<string, string> = {
    ...(skipped.length > 0 ? { [SKIP_BOARDS_ENV]: skipped.join(',') } : {}),
    ...(suites.length > 0 ? { [SKIP_SUITES_ENV]: suites.join(',') } : {}),
    ...(cuts !== undefined ? { [POWERCUT_RUNS_ENV]: String(cuts) } : {}),
  };
  const rel = o.release;
  const work = resolve(o.workDir ?? join(o.repo, 'build', 'fresh', `debian-${rel.version}`));
  const root = join(work, 'root');
  const logs = join(work, 'logs');
  const timeoutMs = o.timeoutMs ?? 90 * 60 * 1000;
  const seconds: Record<string, number> = {};
  const versions: Record<string, string> = {};
  const started = Date.now();
  const commit = capture('git', ['-C', o.repo, 'rev-parse', 'HEAD']).trim();
  if (capture('git', ['-C', o.repo, 'status', '--porcelain', '--untracked-files=no']).trim() !== '') {
    warn(`fresh-check tests commit ${commit.slice(0, 12)}: uncommitted changes in ${o.repo} are not part of it`);
  }

  // A root left by an interrupted run: release it first, then start anew.
  if (existsSync(root)) await releaseRoot(root);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(logs, { recursive: true });
  // One release, shared by the normal end and an interruption (whichever comes first; the other waits for it).
  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= releaseRoot(root).then(() => {
      if (!o.keep) rmSync(root, { recursive: true, force: true });
    }));
  const removeCleanup = addCleanup(release);

  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    info(`fresh-check (Debian ${rel.version}): ${name} ...`);
    const t = Date.now();
    try {
      return await fn();
    } finally {
      seconds[name] = Math.round((Date.now() - t) / 100) / 10;
      info(`fresh-check (Debian ${rel.version}): ${name}: ${seconds[name]} s`);
    }
  };
  const inRoot = (name: string, script: string, opts: { echo?: (l: string) => boolean; timeoutMs?: number; allowFailure?: boolean } = {}) =>
    run('chroot', [root, '/usr/bin/env', '-i', ...rootEnv(tests), 'sh', '-ec', script], {
      log: join(logs, `${name}.log`),
      what: `${name} (in the Debian ${rel.version} root)`,
      timeoutMs: opts.timeoutMs ?? 20 * 60 * 1000,
      tailLines: 400,
      allowFailure: opts.allowFailure,
      onLine: opts.echo ? (l) => (opts.echo!(l) ? info(`  ${l}`) : undefined) : undefined,
    });

  const result: FreshResult = { debian: rel.version, commit, ok: false, seconds, versions, logs, date: new Date().toISOString(), ...(skipped.length > 0 ? { skippedBoards: skipped } : {}), ...(suites.length > 0 ? { skippedSuites: suites } : {}), ...(cuts !== undefined ? { powercutRuns: cuts } : {}) };
  if (skipped.length > 0) info(`fresh-check (Debian ${rel.version}): ${SKIP_BOARDS_ENV}=${skipped.join(',')}: the tests of ${skipped.join(' and ')} report skipped`);
  if (suites.length > 0) info(`fresh-check (Debian ${rel.version}): ${SKIP_SUITES_ENV}=${suites.join(',')}: these malta suites report skipped`);
  if (cuts !== undefined) info(`fresh-check (Debian ${rel.version}): ${POWERCUT_RUNS_ENV}=${cuts}: the settings test makes ${cuts} power cuts (50 without it)`);
  try {
    const archives = archivesOf(parseAptSources(aptSourceFiles()));
    await step('debootstrap', () =>
      run('debootstrap', ['--variant=minbase', rel.codename, root, archives.main], { log: join(logs, 'debootstrap.log'), what: `debootstrap ${rel.codename}`, timeoutMs: 20 * 60 * 1000 }),
    );
    // The host's network setup (name server, apt proxy settings), the same archives, and the mounts a system has.
    copyInto(root, '/etc/resolv.conf');
    for (const f of aptNetworkConfig()) copyInto(root, f);
    rmSync(join(root, 'etc/apt/sources.list'), { force: true });
    writeInto(root, 'etc/apt/sources.list.d/debian.sources', rootSources(rel.codename, archives));
    // The root is a mount point of its own, as / is on a machine: unshare --mount (the tests' firmware
    // hiding) changes the propagation of /, which fails on a directory that is not one.
    await run('mount', ['--bind', root, root]);
    await run('mount', ['--make-private', root]);
    await run('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
    await run('mount', ['-t', 'sysfs', 'sys', join(root, 'sys')]);
    await run('mount', ['--rbind', '/dev', join(root, 'dev')]);
    await run('mount', ['--make-rslave', join(root, 'dev')]);

    await step('prerequisites', async () => {
      await inRoot('prerequisites', `apt-get update\nDEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${rel.prerequisites.join(' ')}`);
      if (rel.node === 'host') {
        // Debian 12 has no Node 20: the host's (README: NodeSource or nodejs.org) is copied in.
        const npmDir = join(capture('npm', ['root', '-g']).trim(), 'npm');
        info(`fresh-check (Debian ${rel.version}): Node ${process.version} and npm copied in from the host (${process.execPath}, ${npmDir}): Debian 12 ships Node 18`);
        copyInto(root, process.execPath, '/usr/bin/node');
        mkdirSync(join(root, 'usr/lib/node_modules'), { recursive: true });
        await run('cp', ['-a', npmDir, join(root, 'usr/lib/node_modules/npm')]);
        await inRoot('node-links', 'ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm\nln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/bin/npx');
      }
      const npm = npmConfig();
      for (const f of npm.files) {
        const text = readFileSync(f, 'utf8');
        writeInto(root, f, npm.cafile ? text.replace(/^(\s*cafile\s*=\s*).*$/m, `$1${ROOT_CA}`) : text);
      }
      if (npm.cafile) copyInto(root, npm.cafile, ROOT_CA);
    });
    await run('git', ['clone', '--quiet', '--no-hardlinks', o.repo, join(root, 'root', 'mips-xip-kernel')]);
    await run('git', ['-C', join(root, 'root', 'mips-xip-kernel'), 'checkout', '--quiet', commit]);

    const progress = (l: string) => /^(\[|xip:|make(:|\[)|apt setup|installing:|busybox|musl|image:|kernel source|boot ok|ℹ|▶|not ok)/.test(l.trim()) || /^\s*(✔|✖)/.test(l);
    await step('make', () => inRoot('make', 'cd /root/mips-xip-kernel\nmake', { echo: progress, timeoutMs }));
    const probes = versionProbes(registeredBoards());
    const v = await inRoot('versions', probes.map(([, cmd]) => cmd).join('\n'));
    v.tail.slice(-probes.length).forEach((l, i) => (versions[probes[i]![0]] = l.trim()));

    await step('make test', async () => {
      const r = await inRoot('make-test', 'cd /root/mips-xip-kernel\nmake test', { echo: progress, timeoutMs, allowFailure: true });
      result.summary = testSummary(r.tail);
      if (r.code !== 0) throw new XipError(`make test failed in the Debian ${rel.version} root (exit ${r.code ?? r.signal}); log ${join(logs, 'make-test.log')}`, { details: r.tail.slice(-25) });
    });
    if (!result.summary) throw new XipError(`make test printed no test summary; log ${join(logs, 'make-test.log')}`);
    result.ok = result.summary.fail === 0 && result.summary.cancelled === 0;
    if (!result.ok) throw new XipError(`make test: ${result.summary.fail} failed, ${result.summary.cancelled} cancelled`);
    return result;
  } catch (err) {
    result.failure = err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    seconds.total = Math.round((Date.now() - started) / 100) / 10;
    writeFileAtomic(join(work, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
    await release();
    removeCleanup();
  }
}

/** One line per fact, for the terminal and CI logs. */
export function formatFresh(r: FreshResult): string {
  const s = r.summary;
  const lines = [
    `fresh-check Debian ${r.debian} at ${r.commit.slice(0, 12)}: ${r.ok ? 'PASSED' : 'FAILED'}${r.failure ? ` (${r.failure})` : ''}`,
    s ? `  tests ${s.tests}: ${s.pass} passed, ${s.fail} failed, ${s.skipped} skipped, ${s.cancelled} cancelled` : '  no test summary',
    ...(r.skippedBoards ? [`  boards left out (${SKIP_BOARDS_ENV}): ${r.skippedBoards.join(', ')}`] : []),
    ...(r.skippedSuites ? [`  malta suites left out (${SKIP_SUITES_ENV}): ${r.skippedSuites.join(', ')}`] : []),
    ...(r.powercutRuns !== undefined ? [`  power cuts (${POWERCUT_RUNS_ENV}): ${r.powercutRuns}`] : []),
    `  times: ${Object.entries(r.seconds).map(([k, v]) => `${k} ${v} s`).join(', ')}`,
    ...Object.entries(r.versions).map(([k, v]) => `  ${k}: ${v}`),
    `  logs: ${r.logs}`,
    // The plain closing line CI logs are read for.
    ...(s ? [`fresh-check: ${s.pass} passed, ${s.fail} failed, ${s.skipped} skipped`] : []),
  ];
  return lines.join('\n');
}
