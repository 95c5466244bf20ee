import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EXIT, XipError } from '../src/errors.ts';
import {
  BLK_DIRECT_PTR,
  BLK_UNCOMPRESSED,
  CRAMFS_FLAGS,
  PAGE,
  mkcramfs,
  readCramfs,
  type CramfsOptions,
} from '../src/userspace/cramfs.ts';
import type { InitramfsEntry } from '../src/userspace/initramfs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-cramfs-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;
const tool = (name: string): string | undefined => [`/usr/sbin/${name}`, `/sbin/${name}`].find((p) => existsSync(p));
const FSCK = tool('fsck.cramfs');
const MKFS = tool('mkfs.cramfs');

/** Reproducible noise (xorshift32): pages that do not compress. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The test tree's regular files: contents and modes. */
const CONTENTS: Record<string, { data: Uint8Array; mode: number }> = {
  '/bin/busybox': { data: noise(3 * PAGE + 17, 1), mode: 0o755 },
  '/etc/empty': { data: new Uint8Array(), mode: 0o644 },
  '/etc/one': { data: Uint8Array.of(0x41), mode: 0o600 },
  '/etc/init.d/page': { data: noise(PAGE, 2), mode: 0o644 },
  '/etc/init.d/two-pages': { data: noise(2 * PAGE, 3), mode: 0o644 },
  '/etc/motd': { data: new TextEncoder().encode('welcome to the router\n'.repeat(400)), mode: 0o644 },
  '/lib/five': { data: noise(4 * PAGE + 100, 4), mode: 0o755 },
};

const hostDir = join(tmp, 'host');
mkdirSync(hostDir);
const location = (name: string): string => join(hostDir, name.slice(1).replaceAll('/', '_'));
for (const [name, f] of Object.entries(CONTENTS)) writeFileSync(location(name), f.data);

const own = { uid: 0, gid: 0 };
/** Children listed before their directories: the order must not matter. */
const ENTRIES: InitramfsEntry[] = [
  ...Object.entries(CONTENTS).map(([name, f]): InitramfsEntry => ({ type: 'file', name, location: location(name), mode: f.mode, ...own })),
  { type: 'slink', name: '/bin/sh', target: 'busybox', mode: 0o777, ...own },
  { type: 'slink', name: '/lib/libfive.so', target: '/lib/five', mode: 0o777, ...own },
  { type: 'nod', name: '/dev/console', mode: 0o600, devType: 'c', major: 5, minor: 1, ...own },
  { type: 'nod', name: '/dev/mtdblock3', mode: 0o640, devType: 'b', major: 31, minor: 3, ...own },
  { type: 'dir', name: '/etc/init.d', mode: 0o755, ...own },
  { type: 'dir', name: '/empty', mode: 0o700, ...own },
  { type: 'dir', name: '/lib', mode: 0o755, ...own },
  { type: 'dir', name: '/dev', mode: 0o755, ...own },
  { type: 'dir', name: '/etc', mode: 0o755, ...own },
  { type: 'dir', name: '/bin', mode: 0o755, ...own },
];
/** mknod needs root: without it the trees unpacked by fsck.cramfs leave out the device nodes. */
const HOST_ENTRIES = isRoot ? ENTRIES : ENTRIES.filter((e) => e.type !== 'nod');

const S_IFMT = 0o170000;
const TYPE_BITS = { dir: 0o040000, file: 0o100000, slink: 0o120000 } as const;

/** readCramfs gives back every entry as listed: type, mode, owner, contents, target, device number. */
function assertHolds(image: Uint8Array, entries: InitramfsEntry[]): void {
  const fs = readCramfs(image);
  assert.equal(fs.files.size, entries.length + 1, 'every entry and the root');
  const root = fs.files.get('/');
  assert.equal(root?.mode, 0o040755);
  for (const e of entries) {
    const f = fs.files.get(e.name);
    assert.ok(f, `${e.name} is in the image`);
    assert.equal(f.type, e.type, e.name);
    assert.equal(f.mode & 0o7777, e.mode, `${e.name} mode`);
    assert.equal([f.uid, f.gid].join(), '0,0');
    if (e.type === 'file') {
      assert.equal(f.mode & S_IFMT, TYPE_BITS.file);
      assert.deepEqual(f.data, CONTENTS[e.name]!.data, `${e.name} contents`);
      assert.equal(f.size, CONTENTS[e.name]!.data.length);
    } else if (e.type === 'slink') {
      assert.equal(f.mode & S_IFMT, TYPE_BITS.slink);
      assert.equal(f.target, e.target);
    } else if (e.type === 'nod') {
      assert.equal(f.mode & S_IFMT, e.devType === 'c' ? 0o020000 : 0o060000);
      assert.equal(f.rdev, (e.major << 8) | e.minor);
    } else {
      assert.equal(f.mode & S_IFMT, TYPE_BITS.dir);
    }
  }
  // Each directory's entries are stored sorted by name (the reader lists them in stored order).
  const byDir = new Map<string, string[]>();
  for (const path of fs.files.keys()) {
    if (path === '/') continue;
    const dir = dirname(path);
    byDir.set(dir, [...(byDir.get(dir) ?? []), path.slice(path.lastIndexOf('/') + 1)]);
  }
  for (const [dir, names] of byDir) assert.deepEqual(names, [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), `${dir} sorted`);
}

function badInputNaming(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof XipError, `expected XipError, got ${String(err)}`);
    assert.equal(err.exitCode, EXIT.badInput);
    assert.ok(!err.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(err.message.includes(p), `message '${err.message}' should mention '${p}'`);
    return true;
  });
}

/** Every entry of `entries` unpacked under `out` as listed, and nothing else. */
function assertUnpacked(out: string, entries: InitramfsEntry[]): void {
  assert.equal(lstatSync(out).mode & 0o7777, 0o755, 'root mode');
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      found.push(p.slice(out.length));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(out);
  assert.deepEqual(found.sort(), entries.map((e) => e.name).sort());
  for (const e of entries) {
    const p = join(out, e.name);
    const st = lstatSync(p);
    if (e.type !== 'slink') assert.equal(st.mode & 0o7777, e.mode, `${e.name} mode`);
    if (e.type === 'file') assert.deepEqual(new Uint8Array(readFileSync(p)), CONTENTS[e.name]!.data, `${e.name} contents`);
    if (e.type === 'dir') assert.ok(st.isDirectory(), e.name);
    if (e.type === 'slink') assert.equal(readlinkSync(p), e.target);
    if (e.type === 'nod') {
      assert.ok(e.devType === 'c' ? st.isCharacterDevice() : st.isBlockDevice(), e.name);
      assert.deepEqual([(st.rdev >> 8) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)], [e.major, e.minor]);
    }
  }
}

function fsck(image: Uint8Array, name: string) {
  const img = join(tmp, `${name}.cramfs`);
  const out = join(tmp, `${name}.out`);
  writeFileSync(img, image);
  // util-linux spells the extract option --extract[=DIR] (there is no -x).
  const r = spawnSync(FSCK!, ['-v', `--extract=${out}`, img], { encoding: 'utf8' });
  return { ...r, out };
}

describe('mkcramfs: checked by util-linux fsck.cramfs', { skip: FSCK === undefined && 'no fsck.cramfs (util-linux)' }, () => {
  for (const endian of ['little', 'big'] as const) {
    it(`${endian}-endian: fsck.cramfs checks the CRC and unpacks the tree as listed`, () => {
      const { image } = mkcramfs(HOST_ENTRIES, { endian });
      const r = fsck(image, `fsck-${endian}`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', 'no warnings');
      assert.match(r.stdout, new RegExp(`cramfs endianness is ${endian}`));
      assert.match(r.stdout, /: OK\n$/);
      assertUnpacked(r.out, HOST_ENTRIES);
    });
  }

  it('an image with XIP pages: fsck.cramfs 2.38 refuses the extended block pointer flag', () => {
    // util-linux's fsck.cramfs (2.38.1 here) does not know CRAMFS_FLAG_EXT_BLOCK_POINTERS
    // (tried: "unsupported filesystem features", exit 8), so XIP images are checked with
    // readCramfs alone. Should a later fsck.cramfs read them, it must unpack them right.
    const { image } = mkcramfs(HOST_ENTRIES, { endian: 'little', xipPages: () => [0] });
    const r = fsck(image, 'fsck-xip');
    if (r.status === 0) assertUnpacked(r.out, HOST_ENTRIES);
    else assert.match(r.stderr, /unsupported filesystem features/);
  });
});

/** Pages requested per file, and the pages that must come out XIP. */
const XIP_CASES: { name: string; xip?: CramfsOptions['xipPages']; expect: Record<string, number[]> }[] = [
  { name: 'no XIP pages', expect: {} },
  {
    name: 'every page XIP',
    xip: (_path, data) => [...Array(Math.ceil(data.length / PAGE)).keys()],
    // A file ending on a page boundary keeps its last page compressed (the kernel would read a direct one as zeros).
    expect: { '/bin/busybox': [0, 1, 2, 3], '/etc/one': [0], '/etc/init.d/two-pages': [0], '/etc/motd': [0, 1, 2], '/lib/five': [0, 1, 2, 3, 4] },
  },
  {
    name: 'a mix of XIP and compressed pages',
    xip: (path) => ({ '/lib/five': [0, 1, 3], '/bin/busybox': new Set([3]), '/etc/init.d/page': [0] })[path] ?? [],
    expect: { '/lib/five': [0, 1, 3], '/bin/busybox': [3] },
  },
];

describe('readCramfs reads back what mkcramfs writes', () => {
  for (const endian of ['little', 'big'] as const) {
    for (const c of XIP_CASES) {
      it(`${endian}-endian, ${c.name}: every entry, direct pages aligned, consecutive and zero-padded`, () => {
        const { image, files } = mkcramfs(ENTRIES, { endian, xipPages: c.xip });
        assert.equal(image.length % PAGE, 0);
        assertHolds(image, ENTRIES);
        const fs = readCramfs(image);
        assert.equal(fs.endian, endian);
        assert.equal(fs.name, 'Compressed');
        assert.deepEqual([fs.fsid.edition, fs.fsid.files], [0, ENTRIES.length + 1]);
        const anyXip = Object.keys(c.expect).length > 0;
        assert.equal(fs.flags, CRAMFS_FLAGS.fsidVersion2 | CRAMFS_FLAGS.sortedDirs | (anyXip ? CRAMFS_FLAGS.extBlockPointers : 0));

        assert.deepEqual(files.map((f) => f.path).sort(), Object.keys(CONTENTS).sort());
        let blocks = 0;
        for (const f of files) {
          const want = c.expect[f.path] ?? [];
          const { data } = CONTENTS[f.path]!;
          assert.deepEqual(f.xipPages, want, `${f.path} XIP pages`);
          assert.deepEqual([f.size, f.blocks, f.xipBytes], [data.length, Math.ceil(data.length / PAGE), want.length * PAGE]);
          assert.equal(f.compressedBytes > 0, f.blocks > want.length, `${f.path} has compressed blocks`);
          const ptrs = fs.files.get(f.path)!.blockPointers ?? [];
          assert.equal(ptrs.length, f.blocks);
          blocks += f.blocks;
          ptrs.forEach((p, i) => {
            const direct = want.includes(i);
            assert.equal(p & (BLK_DIRECT_PTR | BLK_UNCOMPRESSED), direct ? BLK_DIRECT_PTR | BLK_UNCOMPRESSED : 0, `${f.path} page ${i} flags`);
            if (!direct) return;
            const at = (p & 0x3fffffff) * 4;
            assert.equal(at % PAGE, 0, `${f.path} page ${i} is page-aligned`);
            if (want.includes(i - 1)) assert.equal(p, ptrs[i - 1]! + PAGE / 4, `${f.path} pages ${i - 1} and ${i} are physically consecutive`);
            const stored = data.subarray(i * PAGE, (i + 1) * PAGE);
            assert.deepEqual(image.subarray(at, at + stored.length), stored, `${f.path} page ${i} stored as is`);
            assert.ok(image.subarray(at + stored.length, at + PAGE).every((b) => b === 0), `${f.path} page ${i} tail is zero`);
          });
        }
        // Symlinks count their blocks too (one each).
        assert.equal(fs.fsid.blocks, blocks + 2);
      });
    }
  }

  it('makes the directories missing from the list (0755)', () => {
    const file = (name: string): InitramfsEntry => ({ type: 'file', name, location: location('/etc/one'), mode: 0o644, ...own });
    const fs = readCramfs(mkcramfs([file('/opt/a/b/one'), file('/opt/two')], { endian: 'big' }).image);
    assert.deepEqual([...fs.files.keys()], ['/', '/opt', '/opt/a', '/opt/a/b', '/opt/a/b/one', '/opt/two']);
    for (const d of ['/opt', '/opt/a', '/opt/a/b']) assert.equal(fs.files.get(d)!.mode, 0o040755);
  });

  it('pads the image so the last entry has the 264 bytes the kernel reads for it', () => {
    // 250 entries of 16 bytes end the directory structure at byte 4076: 4096 would cut the last entry's read.
    const dirs = [...Array(250).keys()].map((i): InitramfsEntry => ({ type: 'dir', name: `/d${String(i).padStart(3, '0')}`, mode: 0o755, ...own }));
    const { image } = mkcramfs(dirs, { endian: 'little' });
    assert.equal(image.length, 2 * PAGE);
    assert.equal(readCramfs(image).files.size, 251);
  });

  it('reads images made by util-linux mkfs.cramfs the same way', { skip: MKFS === undefined && 'no mkfs.cramfs (util-linux)' }, () => {
    const tree = join(tmp, 'tree');
    for (const e of [...HOST_ENTRIES].sort((a, b) => a.name.split('/').length - b.name.split('/').length)) {
      const p = join(tree, e.name);
      if (e.type === 'dir') mkdirSync(p, { recursive: true });
      if (e.type === 'file') writeFileSync(p, CONTENTS[e.name]!.data);
      if (e.type === 'slink') symlinkSync(e.target, p);
      if (e.type === 'nod') assert.equal(spawnSync('mknod', [p, e.devType, String(e.major), String(e.minor)]).status, 0);
      if (e.type !== 'slink') chmodSync(p, e.mode);
    }
    chmodSync(tree, 0o755);
    for (const endian of ['little', 'big'] as const) {
      const img = join(tmp, `mkfs-${endian}.cramfs`);
      const r = spawnSync(MKFS!, ['-N', endian, tree, img], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const theirs = readCramfs(readFileSync(img));
      const ours = readCramfs(mkcramfs(HOST_ENTRIES, { endian }).image);
      assert.deepEqual([...theirs.files.keys()], [...ours.files.keys()], 'same entries in the same order');
      for (const [path, f] of ours.files) {
        const t = theirs.files.get(path)!;
        // Block pointers differ (system zlib and Node's zlib compress text differently), owners unless run as root.
        const { blockPointers: _p, uid: _u, gid: _g, ...mine } = f;
        const { blockPointers: _q, uid: _v, gid: _h, ...other } = t;
        assert.deepEqual(other, mine, path);
      }
      assert.deepEqual([theirs.flags, theirs.fsid.blocks, theirs.fsid.files], [ours.flags, ours.fsid.blocks, ours.fsid.files]);
    }
  });
});

describe('mkcramfs is deterministic', () => {
  it('gives the same bytes twice and for any order of the entries, other bytes when a file changes', () => {
    const opts: CramfsOptions = { endian: 'little', xipPages: XIP_CASES[2]!.xip };
    const a = mkcramfs(ENTRIES, opts).image;
    assert.deepEqual(mkcramfs(ENTRIES, opts).image, a);
    assert.deepEqual(mkcramfs([...ENTRIES].reverse(), opts).image, a);
    const motd = location('/etc/motd');
    const data = new Uint8Array(CONTENTS['/etc/motd']!.data);
    data[100] = data[100]! ^ 1;
    writeFileSync(motd, data);
    try {
      assert.notDeepEqual(mkcramfs(ENTRIES, opts).image, a);
    } finally {
      writeFileSync(motd, CONTENTS['/etc/motd']!.data);
    }
    assert.deepEqual(mkcramfs(ENTRIES, opts).image, a);
  });
});

describe('mkcramfs refuses what cramfs cannot hold', () => {
  const file = (name: string, loc = location('/etc/one')): InitramfsEntry => ({ type: 'file', name, location: loc, mode: 0o644, ...own });

  it('a name longer than 252 bytes, naming it (252 bytes fit)', () => {
    const long = `/${'n'.repeat(253)}`;
    badInputNaming(() => mkcramfs([file(long)], { endian: 'little' }), long, '253 bytes', '252');
    const fits = `/${'n'.repeat(252)}`;
    assert.ok(readCramfs(mkcramfs([file(fits)], { endian: 'little' }).image).files.has(fits));
  });

  it('a file of 16 MiB, a device number over 8 bits, a page that is not there, a file as a directory', () => {
    const big = join(tmp, 'sixteen-mib');
    writeFileSync(big, '');
    truncateSync(big, 1 << 24);
    badInputNaming(() => mkcramfs([file('/big', big)], { endian: 'little' }), '/big', big, '16 MiB - 1');
    badInputNaming(
      () => mkcramfs([{ type: 'nod', name: '/dev/x', mode: 0o600, devType: 'c', major: 256, minor: 0, ...own }], { endian: 'big' }),
      '/dev/x',
      'major',
    );
    badInputNaming(() => mkcramfs([file('/one')], { endian: 'little', xipPages: () => [1] }), '/one', 'page 1', '1 pages');
    badInputNaming(() => mkcramfs([file('/one'), file('/one/two')], { endian: 'little' }), '/one/two', '/one is not a directory');
    badInputNaming(() => mkcramfs([file('/one'), file('/one')], { endian: 'little' }), '/one', 'twice');
    badInputNaming(() => mkcramfs([file('/missing', join(tmp, 'nope'))], { endian: 'little' }), '/missing', 'ENOENT');
    badInputNaming(() => mkcramfs([], { endian: 'little', name: 'seventeen bytes!!' }), 'volume name', '16 bytes');
  });

  it('readCramfs refuses a damaged image', () => {
    const image = mkcramfs(ENTRIES, { endian: 'little' }).image;
    image[image.length - 1] = 0xff ^ image[image.length - 1]!;
    badInputNaming(() => readCramfs(image), 'CRC');
    badInputNaming(() => readCramfs(new Uint8Array(PAGE)), 'magic');
  });
});
