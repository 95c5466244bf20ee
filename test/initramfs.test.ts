import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EXIT, XipError } from '../src/errors.ts';
import { REPO_ROOT } from '../src/context.ts';
import { run } from '../src/proc.ts';
import {
  minimalInitramfs,
  renderInitramfsList,
  writeInitramfsList,
  type InitramfsEntry,
} from '../src/userspace/initramfs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-initramfs-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function badInputNaming(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof XipError, `expected XipError, got ${String(err)}`);
    assert.equal(err.exitCode, EXIT.badInput);
    assert.ok(!err.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(err.message.includes(p), `message '${err.message}' should mention '${p}'`);
    return true;
  });
}

const dev: InitramfsEntry = { type: 'dir', name: '/dev', mode: 0o755, uid: 0, gid: 0 };

describe('renderInitramfsList', () => {
  it('renders the minimal initramfs in gen_init_cpio syntax', () => {
    const text = renderInitramfsList(minimalInitramfs('/abs/path/init'));
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(lines, [
      'dir /dev 0755 0 0',
      'nod /dev/console 0600 0 0 c 5 1',
      'file /init /abs/path/init 0755 0 0',
    ]);
    assert.ok(text.endsWith('\n'));
  });

  it('sorts parents before children and is independent of input order', () => {
    const entries: InitramfsEntry[] = [
      { type: 'slink', name: '/bin/sh', target: '/init', mode: 0o777, uid: 0, gid: 0 },
      { type: 'file', name: '/init', location: '/x/init', mode: 0o755, uid: 0, gid: 0 },
      { type: 'dir', name: '/dev-extra', mode: 0o700, uid: 1, gid: 2 },
      { type: 'nod', name: '/dev/mtdblock0', mode: 0o600, uid: 0, gid: 0, devType: 'b', major: 31, minor: 0 },
      { type: 'dir', name: '/bin', mode: 0o755, uid: 0, gid: 0 },
      dev,
    ];
    const a = renderInitramfsList(entries);
    const b = renderInitramfsList([...entries].reverse());
    assert.equal(a, b);
    const names = a
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(' ')[1]);
    assert.deepEqual(names, ['/bin', '/bin/sh', '/dev', '/dev/mtdblock0', '/dev-extra', '/init']);
    assert.ok(a.includes('slink /bin/sh /init 0777 0 0\n'));
    assert.ok(a.includes('nod /dev/mtdblock0 0600 0 0 b 31 0\n'));
    assert.ok(a.includes('dir /dev-extra 0700 1 2\n'));
  });

  it('minimalInitramfs makes the init path absolute', () => {
    const file = minimalInitramfs('rel/init').find((e) => e.type === 'file');
    assert.ok(file && file.type === 'file' && file.location.startsWith('/') && file.location.endsWith('/rel/init'));
  });

  it('rejects names that are not plain absolute paths, naming the entry', () => {
    const f = (name: string): InitramfsEntry => ({ type: 'file', name, location: '/x', mode: 0o644, uid: 0, gid: 0 });
    badInputNaming(() => renderInitramfsList([f('init')]), 'file "init"', 'absolute');
    badInputNaming(() => renderInitramfsList([f('/')]), 'absolute');
    badInputNaming(() => renderInitramfsList([dev, f('/dev/../init')]), '"/dev/../init"', "'..'");
    badInputNaming(() => renderInitramfsList([dev, f('/dev//x')]), '"/dev//x"');
    badInputNaming(() => renderInitramfsList([f('/my init')]), '"/my init"', 'whitespace');
    badInputNaming(() => renderInitramfsList([f('/a\nfile /etc/x /y 0644 0 0')]), 'whitespace');
    badInputNaming(() => renderInitramfsList([f('/tab\tname')]), 'whitespace');
  });

  it('rejects bad fields, duplicates and missing parent directories', () => {
    badInputNaming(
      () => renderInitramfsList([{ type: 'file', name: '/init', location: 'init', mode: 0o755, uid: 0, gid: 0 }]),
      '"/init"',
      'location',
    );
    badInputNaming(
      () => renderInitramfsList([{ type: 'file', name: '/init', location: '/a b', mode: 0o755, uid: 0, gid: 0 }]),
      'location',
    );
    badInputNaming(() => renderInitramfsList([{ ...dev, mode: 0o10000 }]), 'mode');
    badInputNaming(() => renderInitramfsList([{ ...dev, uid: -1 }]), 'uid');
    badInputNaming(() => renderInitramfsList([{ ...dev, gid: 1.5 }]), 'gid');
    badInputNaming(
      () =>
        renderInitramfsList([
          dev,
          { type: 'nod', name: '/dev/x', mode: 0o600, uid: 0, gid: 0, devType: 'x' as 'c', major: 1, minor: 1 },
        ]),
      '"/dev/x"',
      'device type',
    );
    badInputNaming(
      () =>
        renderInitramfsList([
          dev,
          { type: 'nod', name: '/dev/x', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5000, minor: 1 },
        ]),
      'major',
    );
    badInputNaming(
      () => renderInitramfsList([{ type: 'slink', name: '/sh', target: '', mode: 0o777, uid: 0, gid: 0 }]),
      '"/sh"',
      'target',
    );
    badInputNaming(() => renderInitramfsList([dev, { ...dev }]), '"/dev"', 'twice');
    badInputNaming(
      () => renderInitramfsList([{ type: 'nod', name: '/dev/console', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5, minor: 1 }]),
      '"/dev/console"',
      '/dev',
    );
    badInputNaming(
      () =>
        renderInitramfsList([
          { type: 'file', name: '/dev', location: '/x', mode: 0o644, uid: 0, gid: 0 },
          { type: 'file', name: '/dev/y', location: '/x', mode: 0o644, uid: 0, gid: 0 },
        ]),
      '"/dev/y"',
    );
    badInputNaming(
      () => renderInitramfsList([{ type: 'fifo', name: '/p', mode: 0o644, uid: 0, gid: 0 } as unknown as InitramfsEntry]),
      'unknown type',
    );
  });

  it('writeInitramfsList writes nothing when the list is bad', () => {
    const out = join(tmp, 'bad', 'initramfs.list');
    badInputNaming(() => writeInitramfsList(out, [{ ...dev, name: 'dev' }]), '"dev"');
    assert.equal(existsSync(out), false);
    const good = join(tmp, 'good', 'initramfs.list');
    const text = writeInitramfsList(good, minimalInitramfs('/x/init'));
    assert.equal(readFileSync(good, 'utf8'), text);
    assert.deepEqual(readdirSync(join(tmp, 'good')), ['initramfs.list']);
  });
});

/**
 * The kernel's own gen_init_cpio must read the list as meant: compile it
 * from the kernel source (a prepared tree under build/, $KERNEL_SRC, or the
 * Debian tarball) and list the archive it makes with cpio -t.
 */
async function genInitCpioSource(): Promise<string> {
  const candidates: string[] = [];
  if (process.env.KERNEL_SRC) candidates.push(join(process.env.KERNEL_SRC, 'usr', 'gen_init_cpio.c'));
  const buildSrc = join(REPO_ROOT, 'build', 'src');
  if (existsSync(buildSrc)) {
    for (const d of readdirSync(buildSrc)) candidates.push(join(buildSrc, d, 'usr', 'gen_init_cpio.c'));
  }
  const found = candidates.find((c) => existsSync(c));
  if (found) return found;
  const tarball = process.env.KERNEL_TARBALL ?? '/usr/src/linux-source-6.12.tar.xz';
  assert.ok(existsSync(tarball), `no kernel source for gen_init_cpio.c: set KERNEL_SRC or install linux-source-6.12`);
  const dir = join(tmp, 'ksrc');
  await run('mkdir', ['-p', dir]);
  await run('tar', ['-xJf', tarball, '-C', dir, '--wildcards', '*/usr/gen_init_cpio.c'], { what: 'extract gen_init_cpio.c' });
  const top = readdirSync(dir)[0];
  assert.ok(top, 'tarball held no gen_init_cpio.c');
  return join(dir, top, 'usr', 'gen_init_cpio.c');
}

describe('gen_init_cpio reads the rendered list', () => {
  it('makes an archive whose cpio -t listing matches the entries', async () => {
    const src = await genInitCpioSource();
    const gen = join(tmp, 'gen_init_cpio');
    await run('cc', ['-O2', '-o', gen, src], { what: 'compile gen_init_cpio' });
    const initFile = join(tmp, 'init-payload');
    writeFileSync(initFile, 'not really an ELF, 28 bytes\n');
    const entries: InitramfsEntry[] = [
      ...minimalInitramfs(initFile),
      { type: 'dir', name: '/bin', mode: 0o755, uid: 0, gid: 0 },
      { type: 'slink', name: '/bin/sh', target: '/init', mode: 0o777, uid: 0, gid: 0 },
    ];
    const list = join(tmp, 'initramfs.list');
    writeInitramfsList(list, entries);
    const cpio = join(tmp, 'initramfs.cpio');
    // gen_init_cpio writes the archive to stdout; a thin shell redirect keeps it binary.
    await run('sh', ['-c', '"$0" "$1" > "$2"', gen, list, cpio], { what: 'gen_init_cpio' });
    const names = (await run('cpio', ['-it', '-F', cpio, '--quiet'])).stdout.trim().split('\n');
    assert.deepEqual(names, ['bin', 'bin/sh', 'dev', 'dev/console', 'init']);
    const long = (await run('cpio', ['-itv', '-F', cpio, '--quiet'])).stdout;
    const line = (name: string) => long.split('\n').find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `)) ?? '';
    assert.match(line('dev/console'), /^crw------- .* 5, +1 /);
    assert.match(line('dev'), /^drwxr-xr-x /);
    assert.match(line('init'), /^-rwxr-xr-x .* 28 /);
    assert.match(line('bin/sh'), /^lrwxrwxrwx .* bin\/sh -> \/init$/);
  });
});
