import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readArchive } from '../src/size/archive.ts';
import { diffSizes, overGrowth, symbolKey } from '../src/size/diff.ts';
import { formatDiff } from '../src/size/format.ts';
import { loadSize } from '../src/size/index.ts';
import { attributeRange, type KernelSymbol, type ObjectIndex, PADDING_MAX, type PlacedSymbol, rodataWeights, shareUnnamed, subsystemOf, UNNAMED_SHARE } from '../src/size/kernel.ts';
import { pruneSymbols } from '../src/size/page.ts';
import type { SizeNode, SizeReport } from '../src/size/types.ts';
import { checkSums, findNode as find } from './fixtures/size.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-size-'));
after(() => rmSync(tmp, { recursive: true, force: true }));


const sym = (name: string, addr: number, size: number, obj: string, label = false): PlacedSymbol => ({ name, addr, size, obj, label });

describe('size attribution of an address range', () => {
  it('puts every byte somewhere: symbols, short gaps as the preceding object\'s padding, long gaps as (no symbol) by section', () => {
    const syms = [
      sym('a', 0x1000, 0x100, 'kernel/sched/core.o'),
      sym('b', 0x1110, 0x80, 'mm/slub.o'), // 16-byte gap after a: core.o's padding
      sym('alias_of_b', 0x1110, 0x40, 'mm/slub.o'), // overlaps b: counted once
      sym('c', 0x1400, 0x20, 'arch/mips/kernel/head.o', true), // a label: runs to the next symbol
      { ...sym('end_label', 0x1510, 0, 'mm/slub.o', true), room: 0x30 }, // a label at the end of its section: 0x30 bytes at most
      sym('d', 0x1500, 0x10, 'mm/slub.o'),
      sym('outside', 0x3000, 0x10, 'mm/slub.o'),
    ];
    const r = attributeRange('text', 0x1000, 0x1600, syms, [{ name: '.tbl', start: 0x1190, end: 0x1200 }]);
    checkSums(r);
    assert.equal(r.bytes, 0x600);
    assert.equal(find(r, 'kernel/sched', 'kernel/sched/core.o', 'a')?.bytes, 0x100);
    assert.equal(find(r, 'kernel/sched', 'kernel/sched/core.o', '(padding)')?.bytes, 0x10);
    assert.equal(find(r, 'mm', 'mm/slub.o', 'b')?.bytes, 0x80);
    assert.equal(find(r, 'mm', 'mm/slub.o', 'alias_of_b'), undefined);
    assert.equal(find(r, 'arch/mips/kernel', 'arch/mips/kernel/head.o', 'c')?.bytes, 0x100, 'a label owns the bytes up to the next symbol');
    // 0x1190..0x1400: 0x70 in .tbl, the rest in no section; 0x1510..0x1600 after d: too long for padding.
    assert.equal(find(r, '(no symbol) .tbl')?.bytes, 0x70);
    assert.equal(find(r, 'mm', 'mm/slub.o', 'end_label')?.bytes, 0x30, 'a label never reaches past its own section');
    assert.equal(find(r, '(no symbol)')?.bytes, 0x1400 - 0x1200 + (0x1600 - 0x1540));
    assert.ok(0x1600 - 0x1540 > PADDING_MAX, 'the gap after the label is too long to be padding');
  });

  it('shares the unnamed bytes of a section out to objects by weight, estimated, the total exact', () => {
    const r = attributeRange('rodata', 0, 1000, [sym('t', 0, 100, 'mm/slub.o')], [{ name: '.rodata', start: 0, end: 1000 }]);
    assert.equal(find(r, '(no symbol) .rodata')?.bytes, 900);
    const shared = shareUnnamed(r, '.rodata', new Map([['mm/slub.o', 1], ['net/ipv4/tcp.o', 1], ['fs/open.o', 1]]));
    checkSums(shared);
    assert.equal(shared.bytes, 1000);
    assert.equal(find(shared, '(no symbol) .rodata'), undefined);
    const parts = ['mm/slub.o', 'net/ipv4/tcp.o', 'fs/open.o'].map((o) => find(shared, subsystemOf(o), o, UNNAMED_SHARE)!);
    assert.deepEqual(parts.map((p) => p.bytes), [300, 300, 300]);
    assert.ok(parts.every((p) => p.estimated === true));
    assert.equal(find(shared, 'mm', 'mm/slub.o')?.bytes, 400, 'added to the object that was there');
    const odd = shareUnnamed(r, '.rodata', new Map([['a/x.o', 1], ['a/y.o', 1]]).set('a/z.o', 5));
    checkSums(odd);
    assert.equal(odd.bytes, 1000, 'rounding keeps the total');
  });

  it('weighs only what was linked: objects with a symbol in vmlinux, jump tables of functions that survived', () => {
    const index: ObjectIndex = {
      defs: new Map(),
      unnamedRodata: new Map([
        ['net/core/filter.o', { always: 100, byFunction: new Map([['kept_fn', 40], ['dropped_fn', 5000]]) }],
        ['lib/unused.o', { always: 700, byFunction: new Map() }],
      ]),
    };
    const linked = (obj: string, name: string) => ({ obj, sym: { name }, label: false, room: 0 }) as unknown as KernelSymbol;
    assert.deepEqual([...rodataWeights(index, [linked('net/core/filter.o', 'kept_fn')])], [['net/core/filter.o', 140]]);
  });

  it('names subsystems by directory: three levels under arch, two elsewhere', () => {
    assert.equal(subsystemOf('arch/mips/kernel/setup.o'), 'arch/mips/kernel');
    assert.equal(subsystemOf('drivers/mtd/maps/physmap-core.o'), 'drivers/mtd');
    assert.equal(subsystemOf('mm/slub.o'), 'mm');
    assert.equal(subsystemOf('.vmlinux.export.o'), '(top level)');
  });

  it('prunes an object\'s small symbols into one cell without changing any total', () => {
    const obj: SizeNode = { name: 'o.o', kind: 'object', bytes: 0, children: [] };
    for (let i = 0; i < 30; i++) obj.children!.push({ name: `s${i}`, bytes: i + 1, kind: 'symbol' });
    obj.bytes = obj.children!.reduce((t, c) => t + c.bytes, 0);
    const p = pruneSymbols({ name: 'r', kind: 'region', bytes: obj.bytes, children: [obj] }, 5);
    checkSums(p);
    const kids = p.children![0]!.children!;
    assert.equal(kids.length, 6);
    assert.deepEqual(kids.slice(0, 5).map((k) => k.name), ['s29', 's28', 's27', 's26', 's25']);
    assert.equal(kids[5]!.name, '(25 smaller symbols)');
  });
});

function report(flashSyms: Record<string, number>, ram: number, free: number): SizeReport {
  const obj: SizeNode = { name: 'net/ipv4/tcp.o', kind: 'object', bytes: 0, children: Object.entries(flashSyms).map(([name, bytes]) => ({ name, bytes, kind: 'symbol' as const })) };
  obj.bytes = obj.children!.reduce((t, c) => t + c.bytes, 0);
  const sub: SizeNode = { name: 'net/ipv4', kind: 'subsystem', bytes: obj.bytes, children: [obj] };
  const text: SizeNode = { name: 'kernel text', kind: 'region', bytes: obj.bytes, children: [sub] };
  const ramNode: SizeNode = { name: 'RAM', kind: 'total', bytes: ram, children: [{ name: '.bss', kind: 'region', bytes: ram }] };
  return {
    schema: 1,
    build: { dir: '/x', board: 'malta', config: 'lwrt_qemu_malta_defconfig', variant: 'xip', toolchain: 'gcc' },
    flash: { name: 'flash', kind: 'total', bytes: text.bytes + free, children: [text, { name: 'free', kind: 'free', bytes: free }] },
    ram: ramNode,
  };
}

describe('size diff', () => {
  const a = report({ tcp_sendmsg: 1000, tcp_recvmsg: 800, gone: 50 }, 4096, 10000);
  const b = report({ tcp_sendmsg: 1200, tcp_recvmsg: 700, fresh: 300 }, 4096, 9650);

  it('counts added, removed, grown and shrunk symbols like bloat-o-meter, and the levels add up', () => {
    const d = diffSizes(a, b);
    assert.deepEqual(d.flashUsed, { name: 'flash used', a: 1850, b: 2200, delta: 350 });
    const s = d.flashSymbols;
    assert.deepEqual([s.added, s.removed, s.grown, s.shrunk, s.up, s.down], [1, 1, 1, 1, 500, -150]);
    assert.equal(s.up + s.down, d.flashUsed!.delta);
    assert.equal(d.flashSubsystems.reduce((t, x) => t + x.delta, 0), d.flashUsed!.delta, 'free space is not a subsystem');
    assert.equal(d.ram.delta, 0);
    const text = formatDiff(d);
    assert.match(text, /flash symbols: add\/remove: 1\/1 grow\/shrink: 1\/1 up\/down: \+500\/-150 \(\+350\)/);
    assert.match(text, /fresh \[net\/ipv4\/tcp\.o\]\s+0\s+300\s+\+300/);
  });

  it('keys symbols without the numbers compilers and macros put in names', () => {
    assert.equal(symbolKey('buf.2'), 'buf');
    assert.equal(symbolKey('rtnl_fill_ifinfo.constprop.0'), 'rtnl_fill_ifinfo.constprop');
    assert.equal(symbolKey('__initcall__kmod_af_inet__741_1895_inet_init5'), '__initcall__kmod_af_inet__inet_init5');
    assert.equal(symbolKey('__UNIQUE_ID___earlycon_ns16550243'), '__UNIQUE_ID___earlycon_ns');
    assert.equal(symbolKey('start_kernel'), 'start_kernel');
  });

  it('--max-growth: over the limit names what grew; a shrink or an equal size passes', () => {
    assert.deepEqual(overGrowth(diffSizes(a, b), 349), ['flash in use grew by 350 bytes']);
    assert.deepEqual(overGrowth(diffSizes(a, b), 350), []);
    assert.deepEqual(overGrowth(diffSizes(b, a), 0), []);
    assert.deepEqual(overGrowth(diffSizes(a, a), 0), []);
  });

  it('reads a saved report back, and refuses what is not one with a line naming the fix', () => {
    const f = join(tmp, 'a.json');
    writeFileSync(f, JSON.stringify(a));
    assert.deepEqual(loadSize(f), a);
    writeFileSync(join(tmp, 'bad.json'), '{"schema":1}');
    assert.throws(() => loadSize(join(tmp, 'bad.json')), /not a size report \(schema 1\); write one with xip size --json/);
    writeFileSync(join(tmp, 'null.json'), 'null');
    assert.throws(() => loadSize(join(tmp, 'null.json')), /not a size report \(schema 1\)/);
    writeFileSync(join(tmp, 'junk.json'), 'junk\n{\n\x1b[31m');
    assert.throws(() => loadSize(join(tmp, 'junk.json')), (err: Error) => /not JSON/.test(err.message) && !err.message.includes('\n') && !err.message.includes('\x1b'));
    assert.throws(() => loadSize(join(tmp, 'nope')), /no such build directory or size file/);
    assert.throws(() => loadSize(tmp), /not a build directory \(no build-info\.json\)/);
  });
});

describe('thin archives as the kernel build makes them', () => {
  it('lists members with short and long names, resolved next to the archive', () => {
    const dir = join(tmp, 'ar');
    execFileSync('mkdir', ['-p', join(dir, 'kernel'), join(dir, 'drivers/a_rather_long_directory_name')]);
    writeFileSync(join(dir, 'kernel/x.o'), 'x');
    writeFileSync(join(dir, 'drivers/a_rather_long_directory_name/some_long_object_name.o'), 'yy');
    execFileSync('mipsel-linux-gnu-ar', ['cDPrST', 'built-in.a', 'kernel/x.o', 'drivers/a_rather_long_directory_name/some_long_object_name.o'], { cwd: dir });
    const m = readArchive(join(dir, 'built-in.a'));
    assert.deepEqual(m.map((x) => x.path), [join(dir, 'kernel/x.o'), join(dir, 'drivers/a_rather_long_directory_name/some_long_object_name.o')]);
    assert.ok(m.every((x) => x.data === undefined), 'a thin archive stores no member data');
    writeFileSync(join(dir, 'bad.a'), 'not an archive');
    assert.throws(() => readArchive(join(dir, 'bad.a')), /not an ar archive/);
  });
});
