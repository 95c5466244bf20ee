import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findNode, getString, getStrings, getU32s, parseFdt, propString, propStrings, propU32, serializeFdt, type Fdt, type FdtNode } from '../src/boards/fdt.ts';
import { xipDeviceTree, type XipDeviceTreeOptions } from '../src/boards/xipdtb.ts';
import { XipError } from '../src/errors.ts';
import { capture } from '../src/proc.ts';

const tmp = mkdtempSync(join(tmpdir(), 'fdt-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Linux 6.12's arch/mips/boot/dts/mti/malta.dts, compiled (see test/fixtures/dtb/README.md). */
const MALTA = new Uint8Array(readFileSync(new URL('fixtures/dtb/malta.dtb', import.meta.url)));

const node = (root: FdtNode, path: string): FdtNode => {
  const n = findNode(root, path);
  assert.ok(n, `node ${path}`);
  return n;
};
const word = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off);
const withWord = (b: Uint8Array, off: number, value: number) => {
  const c = new Uint8Array(b);
  new DataView(c.buffer).setUint32(off, value);
  return c;
};
const badInputMatching = (re: RegExp) => (e: unknown) => e instanceof XipError && e.exitCode === 2 && re.test(e.message);

/**
 * Check a blob's layout on its own, without parseFdt: the header's offsets
 * and sizes cover the blob exactly, in dtc's order; the reservation block
 * is 8-byte aligned and ends in a zero entry; every token of the structure
 * block is 4-byte aligned with zero padding before it and the last is
 * FDT_END; each property name is in the strings block once.
 */
function checkLayout(b: Uint8Array, reserved: number): void {
  const [magic, total, offStruct, offStrings, offRsv, version, lastComp, , sizeStrings, sizeStruct] = Array.from({ length: 10 }, (_, i) => word(b, i * 4));
  assert.deepEqual([magic, version, lastComp], [0xd00dfeed, 17, 16]);
  assert.equal(total, b.length, 'totalsize is the blob');
  assert.equal(offRsv, 40, 'reservation block right after the 40-byte header');
  assert.equal(offRsv! % 8, 0);
  assert.equal(offStruct, offRsv! + 16 * (reserved + 1), 'structure block right after the reservation entries and their terminator');
  assert.deepEqual([word(b, offStruct! - 16), word(b, offStruct! - 12), word(b, offStruct! - 8), word(b, offStruct! - 4)], [0, 0, 0, 0]);
  assert.equal(offStruct! % 4, 0);
  assert.equal(sizeStruct! % 4, 0);
  assert.equal(offStrings, offStruct! + sizeStruct!, 'strings block right after the structure block');
  assert.equal(offStrings! + sizeStrings!, total, 'strings block ends the blob');
  const names = new TextDecoder().decode(b.subarray(offStrings!, total)).split('\0');
  assert.equal(names.pop(), '', 'the strings block ends in a NUL');
  assert.equal(new Set(names).size, names.length, 'each property name once');
  const zeroPadded = (from: number, to: number) => assert.ok(b.subarray(from, to).every((x) => x === 0), `zero padding ${from}..${to}`);
  let p = offStruct!;
  let depth = 0;
  for (;;) {
    assert.equal(p % 4, 0, `token at ${p} is 4-byte aligned`);
    const t = word(b, p);
    p += 4;
    if (t === 1) {
      const nul = b.indexOf(0, p);
      const next = (nul + 4) & ~3;
      zeroPadded(nul, next);
      p = next;
      depth++;
    } else if (t === 3) {
      const len = word(b, p);
      assert.ok(word(b, p + 4) < sizeStrings!, 'name offset inside the strings block');
      const next = (p + 8 + len + 3) & ~3;
      zeroPadded(p + 8 + len, next);
      p = next;
    } else if (t === 2) {
      depth--;
    } else {
      assert.equal(t, 9, `token ${t} at ${p - 4}`);
      break;
    }
  }
  assert.equal(depth, 0, 'every node ended');
  assert.equal(p, offStrings, 'FDT_END is the last word of the structure block');
}

describe('flattened device trees (FDT v17)', () => {
  it("reads QEMU malta's DTB as Linux 6.12's malta.dts writes it", () => {
    const fdt = parseFdt(MALTA);
    const { root } = fdt;
    assert.equal(root.name, '');
    assert.equal(getString(root, 'compatible'), 'mti,malta');
    assert.deepEqual([getU32s(root, '#address-cells'), getU32s(root, '#size-cells')], [[1], [1]]);
    assert.equal(fdt.bootCpuid, 0);
    assert.deepEqual(fdt.memReserve, [
      { address: 0x0n, size: 0x1000n },
      { address: 0x1000n, size: 0xef000n },
      { address: 0xf0000n, size: 0x10000n },
    ]);
    const flash = node(root, '/flash@1e000000');
    assert.deepEqual(getStrings(flash, 'compatible'), ['intel,dt28f160', 'cfi-flash']);
    assert.deepEqual(getU32s(flash, 'reg'), [0x1e000000, 0x400000]);
    assert.deepEqual(getU32s(flash, 'bank-width'), [4]);
    const parts = node(root, '/flash@1e000000/partitions');
    assert.equal(node(root, '/flash/partitions'), parts, 'a name without its unit address finds the one node of that name');
    assert.deepEqual(
      parts.children.map((c) => [c.name, getString(c, 'label'), getU32s(c, 'reg'), c.props.has('read-only')]),
      [
        ['yamon@0', 'YAMON', [0, 0x100000], true],
        ['user-fs@100000', 'User FS', [0x100000, 0x2e0000], false],
        ['board-config@3e0000', 'Board Config', [0x3e0000, 0x20000], true],
      ],
    );
    assert.deepEqual(getU32s(node(root, '/isa/rtc@70'), 'reg'), [1, 0x70, 8]);
    assert.deepEqual(node(root, '/interrupt-controller@1bdc0000/timer').props.get('interrupts')!.length, 12);
    assert.equal(findNode(root, '/interrupt-controller'), root.children[0], 'the exact name wins over other nodes of that name with a unit address');
    assert.equal(findNode(root, '/'), root);
    for (const missing of ['/chosen', '/flash@1f000000', '/flash@1e000000/partitions/kernel', 'flash@1e000000']) assert.equal(findNode(root, missing), undefined, missing);
  });

  it('writes it back byte for byte as dtc did, and what it writes reads back as the same tree', () => {
    const fdt = parseFdt(MALTA);
    const out = serializeFdt(fdt);
    assert.deepEqual(Buffer.from(out), Buffer.from(MALTA));
    assert.deepEqual(parseFdt(out), fdt);
    checkLayout(out, 3);
  });

  it('lays out an edited tree with every header field, alignment and padding right', () => {
    const fdt = parseFdt(MALTA);
    fdt.memReserve.push({ address: 0x1_0000_0000n, size: 0x123n });
    fdt.bootCpuid = 3;
    fdt.root.children.push({
      name: 'odd@1',
      props: new Map([
        ['x', propString('abcde')],
        ['empty', new Uint8Array(0)],
        ['three', new Uint8Array([1, 2, 3])],
        ['list', propStrings(['a', 'bc', ''])],
      ]),
      children: [{ name: 'n', props: new Map([['compatible', propString('y')]]), children: [] }],
    });
    const out = serializeFdt(fdt);
    checkLayout(out, 4);
    assert.equal(word(out, 28), 3, 'boot_cpuid_phys');
    const back = parseFdt(out);
    assert.deepEqual(back, fdt);
    assert.deepEqual(getStrings(node(back.root, '/odd@1'), 'list'), ['a', 'bc', '']);
    assert.deepEqual(Buffer.from(serializeFdt(back)), Buffer.from(out), 'deterministic');
  });

  it('refuses malformed blobs, naming what is wrong', () => {
    const offStruct = word(MALTA, 8);
    const sizeStruct = word(MALTA, 36);
    const cases: [string, Uint8Array, RegExp][] = [
      ['short', MALTA.subarray(0, 20), /20 bytes, shorter than the 40-byte FDT header/],
      ['magic', withWord(MALTA, 0, 0x7f454c46), /magic 0x7f454c46, not a flattened device tree \(0xd00dfeed\)/],
      ['truncated', MALTA.subarray(0, 1000), /totalsize 1739 but only 1000 bytes: truncated/],
      ['old version', withWord(MALTA, 20, 15), /FDT version 15: only versions 16 and 17/],
      ['future version', withWord(MALTA, 24, 18), /last compatible version 18/],
      ['strings past the end', withWord(MALTA, 32, 0x1000), /strings block \(0x614\+0x1000\) lies outside the blob/],
      ['unaligned structure', withWord(MALTA, 8, offStruct + 2), /structure block at 0x6a is not 4-byte aligned/],
      ['no FDT_END', withWord(MALTA, 36, sizeStruct - 4), /missing FDT_END/],
      ['unknown token', withWord(MALTA, offStruct, 7), /unknown token 0x7 at 0x68/],
      ['name offset', withWord(MALTA, offStruct + 12 + 4, 0x999), /name offset 0x999 is past the 0xb7-byte strings block/],
      ['no terminator', withWord(withWord(MALTA, 16, 0x600), 4, 0x6cb), /memory reservation block has no terminating zero entry/],
    ];
    for (const [what, bytes, re] of cases) assert.throws(() => parseFdt(bytes, 'malta.dtb'), (e: unknown) => badInputMatching(/^malta\.dtb: /)(e) && badInputMatching(re)(e), what);
    // Version 16 has no size_dt_struct; its structure block is read up to FDT_END.
    assert.deepEqual(parseFdt(withWord(withWord(MALTA, 20, 16), 36, 0)), parseFdt(MALTA));
  });

  it('property helpers: cells big-endian, strings NUL-terminated, wrong shapes refused', () => {
    assert.deepEqual([...propU32(0x1e000000, 4)], [0x1e, 0, 0, 0, 0, 0, 0, 4]);
    assert.deepEqual([...propStrings(['a', 'bc'])], [0x61, 0, 0x62, 0x63, 0]);
    assert.deepEqual([...propString('')], [0]);
    assert.throws(() => propU32(0x100000000), badInputMatching(/cell 4294967296 is not a 32-bit unsigned integer/));
    assert.throws(() => propU32(-1), badInputMatching(/cell -1/));
    assert.throws(() => propString('a\0b'), badInputMatching(/holds a NUL/));
    const n: FdtNode = { name: 'n', props: new Map([['s', propString('abc')], ['raw', new Uint8Array([1, 2])]]), children: [] };
    assert.throws(() => getU32s(n, 'raw'), badInputMatching(/property 'raw' of node 'n' is 2 bytes, not whole 32-bit cells/));
    assert.throws(() => getString(n, 'raw'), badInputMatching(/property 'raw' of node 'n' is not a NUL-terminated string/));
    assert.equal(getString(n, 'nothing'), undefined);
    assert.equal(getU32s(n, 'nothing'), undefined);
    const fdt: Fdt = { root: { name: '', props: new Map(), children: [{ name: 'a/b', props: new Map(), children: [] }] }, bootCpuid: 0, memReserve: [] };
    assert.throws(() => serializeFdt(fdt), badInputMatching(/a node under \/ is named 'a\/b'/));
    fdt.root.children = [{ name: 'flash@0', props: new Map(), children: [{ name: '', props: new Map(), children: [] }] }];
    assert.throws(() => serializeFdt(fdt), badInputMatching(/a node under \/flash@0 is named ''/));
  });
});

describe('the XIP kernel device tree (xipDeviceTree)', () => {
  const opts: XipDeviceTreeOptions = {
    bootargs: 'console=ttyS0,115200 root=/dev/mtdblock1 rootfstype=cramfs ro',
    flash: { nodePath: '/flash@1e000000', base: 0x1e000000, bankWidth: 4 },
    rom: {
      name: 'xip-rom',
      offset: 0x1000,
      size: 0x3df000,
      // Out of order on purpose: the nodes come out in flash order.
      partitions: [
        { label: 'rootfs', offset: 0x200000, size: 0x1df000 },
        { label: 'kernel', offset: 0, size: 0x200000 },
      ],
    },
  };
  const withRom = (rom: Partial<XipDeviceTreeOptions['rom']>): XipDeviceTreeOptions => ({ ...opts, rom: { ...opts.rom, ...rom } });

  it('sets bootargs, disables the CFI chip and adds a read-only mtd-rom region with fixed partitions', () => {
    const out = xipDeviceTree(MALTA, opts);
    checkLayout(out, 3);
    const { root, memReserve } = parseFdt(out);
    assert.equal(memReserve.length, 3);
    assert.equal(getString(node(root, '/chosen'), 'bootargs'), opts.bootargs);
    const flash = node(root, '/flash@1e000000');
    assert.equal(getString(flash, 'status'), 'disabled');
    assert.deepEqual(getStrings(flash, 'compatible'), ['intel,dt28f160', 'cfi-flash'], 'the flash node stays, as documentation');
    assert.equal(node(flash, '/partitions').children.length, 3);
    const rom = node(root, '/rom@1e001000');
    assert.equal(root.children.filter((c) => c.name.startsWith('rom@')).length, 1);
    assert.deepEqual(getStrings(rom, 'compatible'), ['mtd-rom']);
    assert.deepEqual(getU32s(rom, 'reg'), [0x1e001000, 0x3df000]);
    assert.deepEqual(getU32s(rom, 'bank-width'), [4]);
    assert.equal(getString(rom, 'linux,mtd-name'), 'xip-rom');
    assert.equal(rom.props.has('status'), false);
    const parts = node(rom, '/partitions');
    assert.deepEqual(getStrings(parts, 'compatible'), ['fixed-partitions']);
    assert.deepEqual([getU32s(parts, '#address-cells'), getU32s(parts, '#size-cells')], [[1], [1]]);
    assert.deepEqual(
      parts.children.map((c) => [c.name, getString(c, 'label'), getU32s(c, 'reg'), c.props.get('read-only')?.length]),
      [
        ['kernel@0', 'kernel', [0, 0x200000], 0],
        ['rootfs@200000', 'rootfs', [0x200000, 0x1df000], 0],
      ],
    );
    // Everything else is the board's tree as it was.
    const base = parseFdt(MALTA).root;
    for (const name of ['interrupt-controller', 'interrupt-controller@1bdc0000', 'interrupt-controller@20', 'system-controller@1f000000', 'isa']) {
      assert.deepEqual(node(root, `/${name}`), node(base, `/${name}`), name);
    }
    assert.deepEqual(root.props, base.props);
    // Applied again (now with a /chosen and a rom node), the tree is the same.
    assert.deepEqual(Buffer.from(xipDeviceTree(out, opts)), Buffer.from(out));
  });

  it('a writable region gets a cfi-flash map of its own with writable partitions, refused over the rom map', () => {
    const small = withRom({ size: 0x3d0000, partitions: [{ label: 'rootfs', offset: 0, size: 0x100000 }] });
    const cfi = { name: 'xip-settings', offset: 0x3e0000, size: 0x20000, partitions: [{ label: 'settings', offset: 0, size: 0x20000 }] };
    const { root } = parseFdt(xipDeviceTree(MALTA, { ...small, cfi }));
    const map = node(root, '/flash@1e3e0000');
    assert.deepEqual(getStrings(map, 'compatible'), ['cfi-flash']);
    assert.deepEqual(getU32s(map, 'reg'), [0x1e3e0000, 0x20000]);
    assert.equal(getString(map, 'linux,mtd-name'), 'xip-settings');
    const part = node(map, '/partitions/settings@0');
    assert.deepEqual(getU32s(part, 'reg'), [0, 0x20000]);
    assert.equal(part.props.has('read-only'), false, 'the settings partition is writable');
    assert.equal(getString(node(root, '/flash@1e000000'), 'status'), 'disabled', 'the whole-chip node stays disabled');
    assert.throws(() => xipDeviceTree(MALTA, { ...small, cfi: { ...cfi, offset: 0x3c0000, size: 0x40000 } }), badInputMatching(/cfi region 'xip-settings' overlaps rom region 'xip-rom'/));
    assert.throws(() => xipDeviceTree(MALTA, { ...small, cfi: { ...cfi, size: 0x40000 } }), badInputMatching(/cfi region 'xip-settings' \(0x1e3e0000\+0x40000\) is not inside flash node/));
  });

  it('writes reg in two cells where the root has #address-cells = <2>', () => {
    const fdt = parseFdt(MALTA);
    fdt.root.props.set('#address-cells', propU32(2));
    node(fdt.root, '/flash@1e000000').props.set('reg', propU32(0, 0x1e000000, 0x400000));
    const rom = node(parseFdt(xipDeviceTree(serializeFdt(fdt), opts)).root, '/rom@1e001000');
    assert.deepEqual(getU32s(rom, 'reg'), [0, 0x1e001000, 0x3df000]);
  });

  it('refuses a missing flash node and partitions outside the region or overlapping, naming them', () => {
    const cases: [string, XipDeviceTreeOptions, RegExp][] = [
      ['no flash node', { ...opts, flash: { ...opts.flash, nodePath: '/flash@1f000000' } }, /device tree has no flash node \/flash@1f000000/],
      ['overlap', withRom({ partitions: [opts.rom.partitions[1]!, { label: 'rootfs', offset: 0x1f0000, size: 0x1000 }] }), /partition 'rootfs' at 0x1f0000 overlaps partition 'kernel' \(ends at 0x200000\)/],
      ['past the region', withRom({ partitions: [opts.rom.partitions[1]!, { label: 'rootfs', offset: 0x200000, size: 0x1e0000 }] }), /partition 'rootfs' \(0x200000\+0x1e0000\) ends 4096 bytes past the 0x3df000-byte rom region 'xip-rom'/],
      ['negative offset', withRom({ partitions: [{ label: 'kernel', offset: -0x1000, size: 0x1000 }] }), /partition 'kernel' offset -4096 is not a non-negative integer/],
      ['empty', withRom({ partitions: [{ label: 'kernel', offset: 0, size: 0 }] }), /partition 'kernel' is empty/],
      ['label no node name', withRom({ partitions: [{ label: 'User FS', offset: 0, size: 0x1000 }] }), /partition 'User FS': a label must be 1 to 31 letters/],
      ['region past the chip', withRom({ size: 0x400000 }), /rom region 'xip-rom' \(0x1e001000\+0x400000\) is not inside flash node \/flash@1e000000 \(reg 0x1e000000\+0x400000\)/],
      ['bank width', { ...opts, flash: { ...opts.flash, bankWidth: 3 } }, /flash bank width 3/],
    ];
    for (const [what, o, re] of cases) assert.throws(() => xipDeviceTree(MALTA, o), badInputMatching(re), what);
  });

  it('dtc decompiles what it writes', (t) => {
    if (spawnSync('sh', ['-c', 'command -v dtc']).status !== 0) {
      t.skip('dtc not on PATH: install the Debian package device-tree-compiler to run this check');
      return;
    }
    const f = join(tmp, 'xip.dtb');
    writeFileSync(f, xipDeviceTree(MALTA, opts));
    const dts = capture('dtc', ['-I', 'dtb', '-O', 'dts', f]);
    assert.match(dts, /rom@1e001000 \{[^}]*compatible = "mtd-rom";/);
    assert.match(dts, /rootfs@200000 \{\s*label = "rootfs";\s*reg = <0x200000 0x1df000>;\s*read-only;/);
    assert.match(dts, /bootargs = "console=ttyS0,115200 root=\/dev\/mtdblock1 rootfstype=cramfs ro";/);
    assert.match(dts, /status = "disabled";/);
  });
});
