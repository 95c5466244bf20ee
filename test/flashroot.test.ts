import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withRootfsPartition } from '../src/boards/flashmap.ts';
import { getBoard } from '../src/boards/index.ts';
import { XipError } from '../src/errors.ts';
import { renderConfigInput } from '../src/kernel/kconfig.ts';
import { FLASH_ROOT_INITRAMFS, FLASH_ROOT_KCONFIG, parseMappings, parsePages, textPages, xipPagesOf } from '../src/userspace/flashroot.ts';
import { getProfile } from '../src/userspace/profiles.ts';
import { parseRanges, parseResident, profiledPages } from '../src/userspace/xipprofile.ts';
import { sha256 } from '../src/fsutil.ts';

/** A minimal ELF32 little-endian executable header with the given program headers (type, offset, filesz, flags). */
function elfWith(phdrs: Array<[number, number, number, number]>, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 8, true); // EM_MIPS
  v.setUint32(20, 1, true);
  v.setUint32(28, 52, true); // e_phoff
  v.setUint16(40, 52, true);
  v.setUint16(42, 32, true);
  v.setUint16(44, phdrs.length, true);
  v.setUint16(46, 40, true);
  phdrs.forEach(([type, offset, filesz, flags], i) => {
    const o = 52 + i * 32;
    v.setUint32(o, type, true);
    v.setUint32(o + 4, offset, true);
    v.setUint32(o + 8, 0x400000 + offset, true);
    v.setUint32(o + 12, 0x400000 + offset, true);
    v.setUint32(o + 16, filesz, true);
    v.setUint32(o + 20, filesz, true);
    v.setUint32(o + 24, flags, true);
    v.setUint32(o + 28, 0x1000, true);
  });
  return b;
}

describe('root filesystem in flash', () => {
  it('text pages: the pages of executable PT_LOAD segments, by file offset; nothing for other files', () => {
    // R-X from 0 for 0x2100 bytes (pages 0..2), RW from 0x2100 (page 2..3), a non-LOAD X segment ignored.
    const elf = elfWith([[1, 0, 0x2100, 5], [1, 0x2100, 0x1800, 6], [4, 0x3000, 0x100, 5]], 0x4000);
    assert.deepEqual(textPages(elf), [0, 1, 2]);
    assert.deepEqual(textPages(new TextEncoder().encode('#!/bin/sh\necho hi\n')), []);
    assert.deepEqual(textPages(new Uint8Array(0)), []);
    assert.deepEqual(xipPagesOf('none')('/bin/x', elf), []);
    assert.deepEqual(xipPagesOf('text')('/bin/x', elf), [0, 1, 2]);
  });

  it('the rootfs partition is carved out of the kernel partition after the kernel, on erase sectors, the rest free', () => {
    const board = getBoard('malta');
    const parts = withRootfsPartition(board, 0x2a0123, 0xf3456);
    const k = parts.find((p) => p.content === 'kernel')!;
    const r = parts.find((p) => p.content === 'rootfs')!;
    const f = parts.find((p) => p.name === 'free')!;
    assert.equal(k.offset, 0x1000);
    assert.equal(r.offset, 0x2b0000, 'kernel end 0x2a1123 rounded up to 64 KiB');
    assert.equal(k.offset + k.size, r.offset);
    assert.equal(r.size, 0x100000);
    assert.equal(f.offset, 0x3b0000);
    assert.equal(f.offset + f.size, 0x3e0000, 'up to the settings partition');
    assert.equal(parts.at(-1)!.content, 'settings');
    assert.ok(r.readOnly);
    assert.throws(() => withRootfsPartition(board, 0x2a0123, 0x200000), (e: unknown) => e instanceof XipError && /partition 'kernel' has \d+ bytes after the kernel/.test(e.message));
  });

  it('a map with its own rootfs partition keeps it, and says when the root does not fit it', () => {
    const board = getBoard('malta');
    const own = {
      ...board,
      partitions: [
        { name: 'loader', offset: 0, size: 0x1000, readOnly: true, content: 'loader' as const },
        { name: 'kernel', offset: 0x1000, size: 0x2ff000, readOnly: true, content: 'kernel' as const },
        { name: 'root', offset: 0x300000, size: 0x100000, readOnly: true, content: 'rootfs' as const },
      ],
    };
    assert.equal(withRootfsPartition(own, 0x100000, 0x80000), own.partitions);
    assert.throws(() => withRootfsPartition(own, 0x100000, 0x100001), /partition 'root' .* 1 bytes too small/);
  });

  it('flash-root profiles: the kernel options after the defconfig, an initramfs of only a console and /root', () => {
    for (const name of ['router-xip', 'router-cramfs', 'router-profiled']) assert.ok(getProfile(name).flashRootfs, name);
    assert.equal(getProfile('router').flashRootfs, undefined);
    const text = renderConfigInput('# CONFIG_MISC_FILESYSTEMS is not set\n', 'xip', '/l', 0x1e001000, FLASH_ROOT_KCONFIG);
    assert.ok(text.indexOf('CONFIG_CRAMFS_MTD=y') > text.indexOf('# CONFIG_MISC_FILESYSTEMS is not set'), 'later lines win');
    assert.ok(text.indexOf('CONFIG_CRAMFS_MTD=y') < text.indexOf('CONFIG_INITRAMFS_SOURCE'));
    assert.deepEqual(FLASH_ROOT_INITRAMFS.map((e) => e.name), ['/dev', '/dev/console', '/root']);
    assert.ok(!FLASH_ROOT_INITRAMFS.some((e) => e.name === '/init'), 'no /init: the kernel mounts root=');
  });

  it('parses /cgi-bin/pages', () => {
    const text = 'map r-xp 00400000-00402000 1e2c1000\nr-xp 00400000 1e2c1000\nr-xp 00401000 -\nmap rw-p 004c0000-004c1000 000c0000\nrw-p 004c0000 01f3a000\njunk\n';
    assert.deepEqual(parseMappings(text), [
      { perms: 'r-xp', start: 0x400000, end: 0x402000, offset: 0x1e2c1000 },
      { perms: 'rw-p', start: 0x4c0000, end: 0x4c1000, offset: 0xc0000 },
    ]);
    const pages = parsePages(text);
    assert.equal(pages.length, 3);
    assert.deepEqual(parsePages('r-xp 00400000 1e2c1000\nr-xp 00401000 -\nrw-p 004c0000 01f3a000\njunk\n'), pages);
    assert.deepEqual(pages, [
      { perms: 'r-xp', vaddr: 0x400000, phys: 0x1e2c1000 },
      { perms: 'r-xp', vaddr: 0x401000, phys: undefined },
      { perms: 'rw-p', vaddr: 0x4c0000, phys: 0x1f3a000 },
    ]);
  });
});

describe('execution profiles (xip profile)', () => {
  it("parses the guest's resident output: ranges, '-', lines it could not answer are left out", () => {
    assert.deepEqual(parseRanges('0-3,7,9-10'), [0, 1, 2, 3, 7, 9, 10]);
    assert.deepEqual(parseRanges('-'), []);
    const r = parseResident('/bin/busybox 401234 0-2,5\n/usr/sbin/resident 4376 0\n/bin/x ? cannot-open\n/etc/empty 0 -\n');
    assert.deepEqual([...r.keys()], ['/bin/busybox', '/usr/sbin/resident', '/etc/empty']);
    assert.deepEqual(r.get('/bin/busybox'), { size: 401234, pages: [0, 1, 2, 5] });
    assert.deepEqual(r.get('/etc/empty'), { size: 0, pages: [] });
  });

  it('keeps in place the code up to the last page the profile saw used (cramfs maps only a leading run), and refuses a profile of another program', () => {
    const elf = elfWith([[1, 0, 0x4100, 5], [1, 0x4100, 0x800, 6]], 0x5000);
    const p = { board: 'malta', workload: 'w', recorded: 'now', files: { '/bin/x': { sha256: sha256(elf), size: elf.length, pages: [0, 2, 3] } } };
    const choose = profiledPages(p, 'p.json');
    assert.deepEqual(choose('/bin/x', elf), [0, 1, 2, 3], 'page 1 (unused) stays in place between used ones; page 4 (code, unused, last) is compressed');
    const late = profiledPages({ ...p, files: { '/bin/x': { ...p.files['/bin/x'], pages: [4] } } }, 'p.json');
    assert.deepEqual(late('/bin/x', elf), [0, 1, 2, 3, 4]);
    assert.deepEqual(choose('/etc/script', new TextEncoder().encode('#!/bin/sh\n')), [], 'not a program: nothing to look up');
    assert.throws(() => choose('/bin/y', elf), /has no entry for \/bin\/y: record it again with xip profile/);
    const other = elf.slice();
    other[0x4f00] = 1;
    assert.throws(() => choose('/bin/x', other), /recorded for another \/bin\/x \(sha256 differs\)/);
  });
});
