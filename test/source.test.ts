import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { XipError } from '../src/errors.ts';
import { sha256 } from '../src/fsutil.ts';
import { readSeries } from '../src/kernel/patch.ts';
import {
  DEBIAN_TARBALL,
  prepareSource,
  readKernelVersion,
  readSourceInfo,
  resolveSourceSpec,
  sourcePaths,
  type SourceSpec,
} from '../src/kernel/source.ts';
import { capture } from '../src/proc.ts';
import { HashCache, treeHash } from '../src/stamp.ts';

let dir: string;
let tarball: string;
let tarSum: string;
const OLD = new Date('2020-01-01T00:00:00Z');

/** A tiny tree that passes for a kernel: Makefile with a version, Kconfig, arch/mips. */
function makeKernelTree(root: string, extra = '-test'): void {
  mkdirSync(join(root, 'arch', 'mips', 'kernel'), { recursive: true });
  writeFileSync(
    join(root, 'Makefile'),
    `# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 99\nEXTRAVERSION = ${extra}\nNAME = Test\n`,
  );
  writeFileSync(join(root, 'Kconfig'), 'mainmenu "test"\n');
  writeFileSync(join(root, 'arch', 'mips', 'kernel', 'head.S'), 'line 1\nline 2\nline 3\n');
  writeFileSync(join(root, 'arch', 'mips', 'kernel', 'setup.c'), 'int setup;\n');
  for (const f of ['Makefile', 'Kconfig', 'arch/mips/kernel/head.S', 'arch/mips/kernel/setup.c']) {
    utimesSync(join(root, f), OLD, OLD);
  }
}

function patchText(file: string, from: string, to: string, context: string[]): string {
  const body = context.map((l) => (l === from ? `-${from}\n+${to}` : ` ${l}`)).join('\n');
  return `--- a/${file}\n+++ b/${file}\n@@ -1,${context.length} +1,${context.length} @@\n${body}\n`;
}

function series(name: string, patches: Record<string, string>) {
  const d = join(dir, 'series', name);
  mkdirSync(d, { recursive: true });
  for (const [n, t] of Object.entries(patches)) writeFileSync(join(d, n), t);
  return readSeries(d);
}

function buildDir(name: string): string {
  return join(dir, 'builds', name);
}

function leftovers(b: string): string[] {
  const root = sourcePaths(b).root;
  return existsSync(root) ? readdirSync(root).filter((n) => n.startsWith('.tmp-') || n.startsWith('.old-')) : [];
}

const tarSpec = (extra: Partial<Extract<SourceSpec, { kind: 'tarball' }>> = {}): SourceSpec => ({
  kind: 'tarball',
  path: tarball,
  isDefault: false,
  ...extra,
});

async function prepare(b: string, spec: SourceSpec, s: ReturnType<typeof readSeries> = []) {
  return prepareSource({ spec, buildDir: b, series: s, cache: new HashCache(), log: join(b, 'prepare.log') });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xip-source-'));
  const stage = join(dir, 'stage');
  makeKernelTree(join(stage, 'linux-6.12.99'));
  tarball = join(dir, 'linux-6.12.99.tar.xz');
  capture('tar', ['-cJf', tarball, '-C', stage, 'linux-6.12.99']);
  tarSum = sha256(readFileSync(tarball));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveSourceSpec', () => {
  it('defaults to the Debian tarball', () => {
    assert.deepEqual(resolveSourceSpec({}), { kind: 'tarball', path: DEBIAN_TARBALL, sha256: undefined, isDefault: true });
  });
  it('takes KERNEL_SRC or KERNEL_TARBALL (+ KERNEL_SHA256); empty values are unset', () => {
    assert.equal(resolveSourceSpec({ kernelSrc: '/k' }).kind, 'dir');
    const t = resolveSourceSpec({ kernelTarball: '/k.tar.xz', kernelSha256: 'A'.repeat(64), kernelSrc: ' ' });
    assert.deepEqual(t, { kind: 'tarball', path: '/k.tar.xz', sha256: 'a'.repeat(64), isDefault: false });
  });
  it('rejects both at once, a malformed sha256, and a sha256 for a directory', () => {
    assert.throws(() => resolveSourceSpec({ kernelSrc: '/a', kernelTarball: '/b' }), /only one/);
    assert.throws(() => resolveSourceSpec({ kernelTarball: '/b', kernelSha256: 'abc' }), /not a sha256/);
    assert.throws(() => resolveSourceSpec({ kernelSrc: '/a', kernelSha256: 'a'.repeat(64) }), /applies to KERNEL_TARBALL/);
  });
});

describe('readKernelVersion', () => {
  it('reads VERSION.PATCHLEVEL.SUBLEVEL EXTRAVERSION', () => {
    const t = join(dir, 'ver');
    makeKernelTree(t, '-rc1');
    assert.equal(readKernelVersion(t), '6.12.99-rc1');
  });
  it('refuses a directory that is not a kernel tree, in one line', () => {
    const t = join(dir, 'notkernel');
    mkdirSync(t, { recursive: true });
    writeFileSync(join(t, 'Makefile'), 'all:\n\ttrue\n');
    assert.throws(
      () => readKernelVersion(t, `KERNEL_SRC=${t}`),
      (e: unknown) => e instanceof XipError && e.exitCode === 2 && /is not a Linux kernel source tree/.test(e.message) && !e.message.includes('\n'),
    );
    assert.throws(() => readKernelVersion(join(dir, 'absent')), /no such directory/);
  });
});

describe('prepareSource', () => {
  it('unpacks a tarball into build/src/linux and records the version', async () => {
    const b = buildDir('ok');
    const inf = await prepare(b, tarSpec({ sha256: tarSum }));
    assert.equal(inf.version, '6.12.99-test');
    const p = sourcePaths(b);
    assert.equal(readKernelVersion(p.tree), '6.12.99-test');
    assert.equal(readSourceInfo(b)?.version, '6.12.99-test');
    assert.match(readSourceInfo(b)?.originHash ?? '', new RegExp(`^tarball:${tarSum}$`));
    assert.deepEqual(leftovers(b), []);
  });

  it('refuses a checksum mismatch and extracts nothing', async () => {
    const b = buildDir('badsum');
    await assert.rejects(prepare(b, tarSpec({ sha256: '0'.repeat(64) })), (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.match(e.message, /sha256 mismatch/);
      assert.ok(e.message.includes(tarSum));
      assert.equal(e.exitCode, 2);
      return true;
    });
    assert.equal(existsSync(sourcePaths(b).tree), false);
    assert.deepEqual(leftovers(b), []);
  });

  it('refuses a missing tarball, and a directory given as a tarball', async () => {
    const b = buildDir('missing');
    await assert.rejects(prepare(b, tarSpec({ path: join(dir, 'nope.tar.xz') })), /KERNEL_TARBALL=.*nope\.tar\.xz: no such file/);
    await assert.rejects(prepare(b, tarSpec({ path: dir })), /is not a file/);
    assert.equal(existsSync(sourcePaths(b).tree), false);
  });

  it('a missing default Debian tarball says how to install it', async () => {
    const b = buildDir('nodebian');
    const spec: SourceSpec = { kind: 'tarball', path: join(dir, 'linux-source-6.12.tar.xz'), isDefault: true };
    await assert.rejects(prepare(b, spec), (e: unknown) => e instanceof XipError && e.exitCode === 3 && /linux-source-6\.12/.test(e.message));
  });

  it('refuses a damaged tarball and leaves nothing half-extracted', async () => {
    const b = buildDir('corrupt');
    const bad = join(dir, 'corrupt.tar.xz');
    // A valid xz stream cut in half: tar starts unpacking, then fails.
    const whole = readFileSync(tarball);
    writeFileSync(bad, whole.subarray(0, Math.floor(whole.length / 2)));
    await assert.rejects(prepare(b, tarSpec({ path: bad })), /could not be unpacked/);
    assert.equal(existsSync(sourcePaths(b).tree), false);
    assert.deepEqual(leftovers(b), []);
    writeFileSync(bad, 'this is not a tarball at all\n');
    await assert.rejects(prepare(b, tarSpec({ path: bad })), /could not be unpacked/);
  });

  it('refuses a tarball that does not hold a kernel tree', async () => {
    const b = buildDir('notkernel-tar');
    const stage = join(dir, 'stage-nk', 'something');
    mkdirSync(stage, { recursive: true });
    writeFileSync(join(stage, 'README'), 'hello');
    const t = join(dir, 'nk.tar.gz');
    capture('tar', ['-czf', t, '-C', join(dir, 'stage-nk'), 'something']);
    await assert.rejects(prepare(b, tarSpec({ path: t })), /is not a Linux kernel source tree/);
    assert.equal(existsSync(sourcePaths(b).tree), false);
    assert.deepEqual(leftovers(b), []);
  });

  it('copies KERNEL_SRC without touching the user tree, then patches the copy', async () => {
    const user = join(dir, 'user-tree');
    makeKernelTree(user);
    mkdirSync(join(user, '.git'));
    writeFileSync(join(user, '.git', 'HEAD'), 'ref: x\n');
    const before = treeHash(user);
    const b = buildDir('dir');
    const s = series('dir', {
      '0001-head.patch': patchText('arch/mips/kernel/head.S', 'line 2', 'patched', ['line 1', 'line 2', 'line 3']),
    });
    const inf = await prepare(b, { kind: 'dir', path: user }, s);
    assert.equal(inf.version, '6.12.99-test');
    assert.equal(treeHash(user), before, 'user tree unchanged');
    const tree = sourcePaths(b).tree;
    assert.match(readFileSync(join(tree, 'arch/mips/kernel/head.S'), 'utf8'), /patched/);
    assert.equal(existsSync(join(tree, '.git')), false, '.git is not copied');
    assert.deepEqual(inf.touched, ['arch/mips/kernel/head.S']);
  });

  it('a failing patch names patch and file and leaves the prepared tree as it was', async () => {
    const b = buildDir('patchfail');
    await prepare(b, tarSpec());
    const tree = sourcePaths(b).tree;
    const before = treeHash(tree);
    const infoBefore = readFileSync(sourcePaths(b).info, 'utf8');
    const s = series('fail', {
      '0001-ok.patch': patchText('arch/mips/kernel/head.S', 'line 2', 'patched', ['line 1', 'line 2', 'line 3']),
      '0002-bad.patch': patchText('arch/mips/kernel/setup.c', 'int nosuch;', 'int x;', ['int nosuch;']),
    });
    await assert.rejects(prepare(b, tarSpec(), s), /kernel patch 0002-bad\.patch does not apply to arch\/mips\/kernel\/setup\.c/);
    assert.equal(treeHash(tree), before);
    assert.equal(readFileSync(sourcePaths(b).info, 'utf8'), infoBefore);
    assert.deepEqual(leftovers(b), []);
  });

  it('a changed series re-prepares and gives fresh mtimes to files either series touched', async () => {
    const b = buildDir('reseries');
    const ctx = ['line 1', 'line 2', 'line 3'];
    const s1 = series('s1', {
      '0001-head.patch': patchText('arch/mips/kernel/head.S', 'line 2', 'old series', ctx),
    });
    await prepare(b, tarSpec(), s1);
    const tree = sourcePaths(b).tree;
    const start = Date.now() - 1000;
    const s2 = series('s2', {
      '0001-setup.patch': patchText('arch/mips/kernel/setup.c', 'int setup;', 'int setup2;', ['int setup;']),
    });
    const inf = await prepare(b, tarSpec(), s2);
    // head.S is back to the tarball's content, but must not carry the tarball's old mtime.
    assert.equal(readFileSync(join(tree, 'arch/mips/kernel/head.S'), 'utf8'), 'line 1\nline 2\nline 3\n');
    assert.ok(statSync(join(tree, 'arch/mips/kernel/head.S')).mtimeMs >= start, 'reverted file has a new mtime');
    assert.ok(statSync(join(tree, 'arch/mips/kernel/setup.c')).mtimeMs >= start);
    // Files no series touched keep the tarball's mtime (make has nothing to rebuild for them).
    assert.equal(statSync(join(tree, 'Kconfig')).mtimeMs, OLD.getTime());
    assert.deepEqual(inf.series.map((p) => p.name), ['0001-setup.patch']);
  });

  it('the same source and series again (the stage reran for a toolkit change) keeps the tree and every mtime', async () => {
    const b = buildDir('same-again');
    const s1 = series('same', {
      '0001-setup.patch': patchText('arch/mips/kernel/setup.c', 'int setup;', 'int setup3;', ['int setup;']),
    });
    const first = await prepare(b, tarSpec(), s1);
    const tree = sourcePaths(b).tree;
    const patched = join(tree, 'arch/mips/kernel/setup.c');
    const before = statSync(patched);
    const again = await prepare(b, tarSpec(), s1);
    assert.equal(again.prepared, first.prepared, 'not prepared again');
    assert.equal(statSync(patched).mtimeMs, before.mtimeMs);
    assert.equal(statSync(patched).ino, before.ino, 'the same file, not a new extraction');
    assert.deepEqual(leftovers(b), []);
  });
});
