import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { bootExpectation, userspaceBuild } from '../src/userspace/profiles.ts';
import {
  buildStressProgram,
  comparableStressLines,
  parseStressLog,
  STRESS_MARKERS,
  STRESS_PARTS,
} from '../src/userspace/stress.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-stress-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('stress programs', () => {
  for (const toolchain of ['clang', 'gcc'] as const) {
    it(`build as static mipsel executables with ${toolchain}`, async () => {
      const ctx = makeContext({ toolchain, buildDir: tmp, userspace: 'stress' });
      for (const p of ['stress', 'child'] as const) {
        const out = join(tmp, toolchain, p);
        await buildStressProgram(ctx, p, out);
        const elf = readElf(out);
        assert.equal(elf.endian, 'little');
        assert.equal(elf.machine, 8);
        assert.equal(elf.type, 2);
        assert.ok(!elf.segments.some((s) => s.type === 3), 'no PT_INTERP');
        // Freestanding: no libc strings, and the raw syscall instruction is in there.
        const text = readFileSync(out);
        assert.ok(text.includes(Buffer.from([0x0c, 0x00, 0x00, 0x00])), 'syscall instruction');
      }
    });
  }

  it('the profile builds both into an initramfs with /init and /bin/stress-child', async () => {
    const ctx = makeContext({ buildDir: tmp, userspace: 'stress' });
    assert.match(ctx.variantDir, /xip-clang-stress$/);
    const entries = await userspaceBuild('stress').build(ctx, join(tmp, 'us'));
    assert.deepEqual(entries.map((e) => e.name).sort(), ['/bin', '/bin/stress-child', '/dev', '/dev/console', '/init']);
    assert.deepEqual(bootExpectation('stress').markers, STRESS_MARKERS);
    assert.ok(STRESS_MARKERS.indexOf('STRESS-PASS') > STRESS_MARKERS.indexOf('STRESS-TOTAL:'));
  });
});

describe('stress log parsing', () => {
  const ok = [
    '[    1.0] random kernel line',
    'STRESS-TLB: mappings=36 pages=2304 accesses=40968 bad=0 checksum 0xd71ca865 ok\r',
    'STRESS-PRESSURE: mib=245 end=killed checksum 0x1dc4d29e ok',
    'STRESS-TOTAL: parts=9 failed=0 checksum 0x16bc788f',
  ].join('\n');

  it('reads counts, checksum and verdict per part', () => {
    const r = parseStressLog(ok);
    assert.deepEqual([...r.keys()], ['TLB', 'PRESSURE', 'TOTAL']);
    assert.deepEqual(r.get('TLB')!.counts, { mappings: '36', pages: '2304', accesses: '40968', bad: '0' });
    assert.equal(r.get('TLB')!.checksum, '0xd71ca865');
    assert.equal(r.get('TLB')!.ok, true);
    assert.equal(r.get('TOTAL')!.ok, true);
  });

  it('a FAIL line is not ok and keeps its reason', () => {
    const r = parseStressLog('STRESS-ZERO: pages=320 bad=3 checksum 0x00000001 FAIL nonzero data\n');
    assert.equal(r.get('ZERO')!.ok, false);
    assert.equal(r.get('ZERO')!.why, 'nonzero data');
  });

  it('compares the pressure part by checksum only, every other line whole', () => {
    const other = ok.replace('mib=245', 'mib=5').replace('end=killed', 'end=refused');
    assert.deepEqual(comparableStressLines(parseStressLog(other)), comparableStressLines(parseStressLog(ok)));
    const changed = ok.replace('pages=2304', 'pages=2303');
    assert.notDeepEqual(comparableStressLines(parseStressLog(changed)), comparableStressLines(parseStressLog(ok)));
    const sum = ok.replace('0x1dc4d29e', '0x1dc4d29f');
    assert.notDeepEqual(comparableStressLines(parseStressLog(sum)), comparableStressLines(parseStressLog(ok)));
  });

  it('knows every part the program prints', () => {
    const src = readFileSync(join(import.meta.dirname, '..', 'userspace', 'stress', 'stress.c'), 'utf8');
    for (const p of STRESS_PARTS) assert.match(src, new RegExp(`res_begin\\("${p}"\\)`), p);
  });
});
