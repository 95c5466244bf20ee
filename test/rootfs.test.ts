import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { XipError } from '../src/errors.ts';
import { run } from '../src/proc.ts';
import { REPO_ROOT } from '../src/context.ts';
import { renderInitramfsList, type InitramfsEntry } from '../src/userspace/initramfs.ts';
import { resolveLinkInTree, rootfsEntries, rootfsListing } from '../src/userspace/rootfs.ts';
import { spawnSync } from 'node:child_process';

const tmp = mkdtempSync(join(tmpdir(), 'xip-rootfs-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function fresh(): string {
  const d = join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
}

/** A small tree: dirs, files of several modes, absolute and relative symlinks, a dangling one. */
function stage(dir: string): void {
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'etc', 'init.d'), { recursive: true });
  mkdirSync(join(dir, 'www', 'cgi-bin'), { recursive: true });
  writeFileSync(join(dir, 'bin', 'busybox'), 'not really busybox\n');
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  symlinkSync('/bin/busybox', join(dir, 'bin', 'sh'));
  symlinkSync('busybox', join(dir, 'bin', 'ls'));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  chmodSync(join(dir, 'etc', 'passwd'), 0o644);
  writeFileSync(join(dir, 'etc', 'shadow'), 'root:*:1::::::\n');
  chmodSync(join(dir, 'etc', 'shadow'), 0o600);
  symlinkSync('../../tmp/resolv.conf', join(dir, 'etc', 'init.d', 'resolv'));
  writeFileSync(join(dir, 'www', 'cgi-bin', 'status'), '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'www', 'cgi-bin', 'status'), 0o4750);
  writeFileSync(join(dir, 'init'), '#!/bin/sh\nexec /bin/sh\n');
  chmodSync(join(dir, 'init'), 0o755);
  chmodSync(join(dir, 'www'), 0o750);
}

function byName(entries: InitramfsEntry[]): Map<string, InitramfsEntry> {
  return new Map(entries.map((e) => [e.name, e]));
}

function throwsNaming(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof XipError, `expected XipError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(err.message.includes(p), `message '${err.message}' should name ${p}`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

describe('rootfsEntries: what a staged tree becomes', () => {
  it('keeps directories, files with their full modes, symlink targets, owners 0:0', () => {
    const d = fresh();
    stage(d);
    const m = byName(rootfsEntries(d));
    assert.deepEqual(m.get('/bin'), { type: 'dir', name: '/bin', mode: 0o755, uid: 0, gid: 0 });
    assert.equal(m.get('/www')?.mode, 0o750);
    const bb = m.get('/bin/busybox');
    assert.equal(bb?.type, 'file');
    assert.equal(bb?.mode, 0o755);
    assert.equal(bb?.type === 'file' && bb.location, join(d, 'bin', 'busybox'));
    assert.equal(m.get('/etc/shadow')?.mode, 0o600);
    assert.equal(m.get('/etc/passwd')?.mode, 0o644);
    assert.equal(m.get('/www/cgi-bin/status')?.mode, 0o4750, 'setuid bit kept');
    const sh = m.get('/bin/sh');
    assert.equal(sh?.type, 'slink');
    assert.equal(sh?.type === 'slink' && sh.target, '/bin/busybox');
    const ls = m.get('/bin/ls');
    assert.equal(ls?.type === 'slink' && ls.target, 'busybox');
    for (const e of m.values()) {
      assert.equal(e.uid, 0, e.name);
      assert.equal(e.gid, 0, e.name);
    }
  });

  it('adds /dev, /dev/console (c 5 1) and /dev/null (c 1 3) as device nodes', () => {
    const d = fresh();
    stage(d);
    const m = byName(rootfsEntries(d));
    assert.equal(m.get('/dev')?.type, 'dir');
    assert.deepEqual(m.get('/dev/console'), { type: 'nod', name: '/dev/console', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5, minor: 1 });
    assert.deepEqual(m.get('/dev/null'), { type: 'nod', name: '/dev/null', mode: 0o666, uid: 0, gid: 0, devType: 'c', major: 1, minor: 3 });
    // A staged /dev keeps its mode; the nodes still go in.
    const d2 = fresh();
    mkdirSync(join(d2, 'dev'));
    chmodSync(join(d2, 'dev'), 0o700);
    const m2 = byName(rootfsEntries(d2));
    assert.equal(m2.get('/dev')?.mode, 0o700);
    assert.equal(m2.get('/dev/null')?.type, 'nod');
  });

  it('renders as a valid gen_init_cpio list', () => {
    const d = fresh();
    stage(d);
    const text = renderInitramfsList(rootfsEntries(d));
    assert.match(text, /^slink \/bin\/sh \/bin\/busybox 0777 0 0$/m);
    assert.match(text, /^file \/www\/cgi-bin\/status \S+ 04750 0 0$/m);
    assert.match(text, /^nod \/dev\/null 0666 0 0 c 1 3$/m);
  });
});

describe('rootfsEntries: errors name the path', () => {
  it('a missing directory', () => {
    const d = join(tmp, 'does-not-exist');
    throwsNaming(() => rootfsEntries(d), d, 'no such directory');
  });

  it('a file instead of a directory', () => {
    const f = join(fresh(), 'file');
    writeFileSync(f, 'x');
    throwsNaming(() => rootfsEntries(f), f, 'not a directory');
  });

  it('a symlink escaping the tree (relative)', () => {
    const d = fresh();
    mkdirSync(join(d, 'etc'));
    symlinkSync('../../host-secret', join(d, 'etc', 'leak'));
    throwsNaming(() => rootfsEntries(d), join(d, 'etc', 'leak'), 'outside the rootfs');
  });

  it('a fifo', () => {
    const d = fresh();
    const r = spawnSync('mkfifo', [join(d, 'pipe')]);
    assert.equal(r.status, 0, 'mkfifo must work on this host');
    throwsNaming(() => rootfsEntries(d), join(d, 'pipe'), 'fifo');
  });

  it('a socket', async () => {
    const d = fresh();
    const sock = join(d, 'sock');
    const srv = createServer();
    await new Promise<void>((res) => srv.listen(sock, res));
    try {
      throwsNaming(() => rootfsEntries(d), sock, 'socket');
    } finally {
      await new Promise<void>((res) => srv.close(() => res()));
    }
  });

  it('a device node (when this host lets us make one)', (t) => {
    const d = fresh();
    const r = spawnSync('mknod', [join(d, 'null'), 'c', '1', '3']);
    if (r.status !== 0) {
      t.skip('mknod needs root here');
      return;
    }
    throwsNaming(() => rootfsEntries(d), join(d, 'null'), 'character device');
  });

  it('a staged /dev/console that would clash with the node', () => {
    const d = fresh();
    mkdirSync(join(d, 'dev'));
    writeFileSync(join(d, 'dev', 'console'), '');
    throwsNaming(() => rootfsEntries(d), join(d, 'dev', 'console'), 'device node');
  });

  it('whitespace in a name', () => {
    const d = fresh();
    writeFileSync(join(d, 'a b'), '');
    throwsNaming(() => rootfsEntries(d), 'a b', 'rename');
  });

  it('an unreadable file (when permissions apply to this user)', (t) => {
    const d = fresh();
    const f = join(d, 'secret');
    writeFileSync(f, 'x');
    chmodSync(f, 0o000);
    let readable = true;
    try {
      readFileSync(f);
    } catch {
      readable = false;
    }
    if (readable) {
      t.skip('running as root: every file is readable');
      return;
    }
    throwsNaming(() => rootfsEntries(d), f, 'cannot read');
  });
});

describe('resolveLinkInTree', () => {
  it('resolves relative and absolute targets inside the image', () => {
    assert.equal(resolveLinkInTree('/bin/sh', 'busybox'), '/bin/busybox');
    assert.equal(resolveLinkInTree('/bin/sh', '/bin/busybox'), '/bin/busybox');
    assert.equal(resolveLinkInTree('/etc/init.d/x', '../../tmp/y'), '/tmp/y');
    assert.equal(resolveLinkInTree('/a', '.'), '/');
  });
  it('refuses targets above the root', () => {
    assert.equal(resolveLinkInTree('/etc/x', '../../y'), undefined);
    assert.equal(resolveLinkInTree('/x', '/../etc'), undefined);
    assert.equal(resolveLinkInTree('/a/b/c', '../../../..'), undefined);
  });
});

describe('determinism', () => {
  it('the same tree staged twice (other times, other order) gives the same entries and listing', () => {
    const a = fresh();
    const b = fresh();
    stage(a);
    stage(b);
    utimesSync(join(b, 'init'), 1_000_000, 1_000_000);
    const la = renderInitramfsList(rootfsEntries(a)).replaceAll(a, 'ROOT');
    const lb = renderInitramfsList(rootfsEntries(b)).replaceAll(b, 'ROOT');
    assert.equal(la, lb);
    assert.equal(rootfsListing(rootfsEntries(a)), rootfsListing(rootfsEntries(b)));
  });

  it('the listing notices a mode change the content hash alone would miss', () => {
    const d = fresh();
    stage(d);
    const before = rootfsListing(rootfsEntries(d));
    chmodSync(join(d, 'etc', 'passwd'), 0o600);
    assert.notEqual(rootfsListing(rootfsEntries(d)), before);
    const again = rootfsListing(rootfsEntries(d));
    rmSync(join(d, 'bin', 'ls'));
    symlinkSync('/bin/busybox', join(d, 'bin', 'ls'));
    assert.notEqual(rootfsListing(rootfsEntries(d)), again, 'a changed link target shows');
  });

  const genSrc = join(REPO_ROOT, 'build', 'src', 'linux', 'usr', 'gen_init_cpio.c');
  it('the kernel\'s gen_init_cpio gives the same bytes for two stagings of one tree', async (t) => {
    if (!existsSync(genSrc)) {
      t.skip(`${genSrc} not prepared (xip source)`);
      return;
    }
    const gen = join(tmp, 'gen_init_cpio');
    await run('cc', ['-O2', '-o', gen, genSrc], { what: 'cc gen_init_cpio' });
    const cpio = async (dir: string, name: string) => {
      const list = join(tmp, `${name}.list`);
      writeFileSync(list, renderInitramfsList(rootfsEntries(dir)));
      const r = spawnSync(gen, ['-t', '0', list], { maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, String(r.stderr));
      return r.stdout;
    };
    const a = fresh();
    stage(a);
    const b = fresh();
    stage(b);
    utimesSync(join(b, 'etc', 'passwd'), 2_000_000_000, 2_000_000_000);
    // Different host paths, different mtimes: the archives must still be identical.
    const ca = await cpio(a, 'a');
    const cb = await cpio(b, 'b');
    assert.ok(ca.length > 512);
    assert.ok(ca.equals(cb), 'two stagings of the same tree must give identical cpio bytes');
    // And a change of mode changes them.
    chmodSync(join(b, 'etc', 'passwd'), 0o640);
    assert.ok(!ca.equals(await cpio(b, 'b2')));
  });
});

describe('LWRT_ROOTFS in the build context', () => {
  it('selects the router config and the rootfs profile, with its own build directory', async () => {
    const { makeContext } = await import('../src/context.ts');
    const { mergeEnv } = await import('../src/cli.ts');
    const d = fresh();
    const ctx = makeContext({ rootfs: d });
    assert.equal(ctx.config, 'lwrt_qemu_malta_defconfig');
    assert.equal(ctx.userspace, 'rootfs');
    assert.equal(ctx.rootfs, d);
    assert.match(ctx.variantDir, /\/malta\/lwrt_qemu_malta\/xip-clang-rootfs$/);
    assert.equal(makeContext({ config: 'lwrt_qemu_malta_defconfig' }).userspace, 'router');
    assert.equal(makeContext({ rootfs: d, config: 'xip_qemu_malta_defconfig' }).config, 'xip_qemu_malta_defconfig');
    assert.throws(() => makeContext({ rootfs: d, userspace: 'init' }), /LWRT_ROOTFS is embedded by the 'rootfs' userspace/);
    assert.equal(mergeEnv({}, { LWRT_ROOTFS: d }).lwrtRootfs, d);
    assert.equal(mergeEnv({ lwrtRootfs: '/x' }, { LWRT_ROOTFS: d }).lwrtRootfs, '/x');
  });

  it('the rootfs profile refuses to build without a directory, and its stamp input sees modes', async () => {
    const { makeContext } = await import('../src/context.ts');
    const { userspaceBuild } = await import('../src/userspace/profiles.ts');
    const { Hasher } = await import('../src/stamp.ts');
    const p = userspaceBuild('rootfs');
    await assert.rejects(p.build(makeContext({ userspace: 'rootfs', config: 'lwrt_qemu_malta_defconfig' }), tmp), /LWRT_ROOTFS=DIR/);
    const d = fresh();
    stage(d);
    const ctx = makeContext({ rootfs: d });
    const digest = () => {
      const h = new Hasher();
      p.inputs(h, ctx);
      return h.digest();
    };
    const before = digest();
    assert.equal(digest(), before);
    chmodSync(join(d, 'etc', 'shadow'), 0o640);
    assert.notEqual(digest(), before, 'a mode change (no exec bit involved) changes the stamp');
    const entries = await p.build(ctx, tmp);
    assert.ok(entries.some((e) => e.name === '/dev/console'));
  });
});
