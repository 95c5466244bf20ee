import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkXipText, definesFunction } from '../src/kernel/xiptext.ts';

/**
 * The build-time guard of MTD_XIP (src/kernel/xiptext.ts): code in .xiptext
 * (RAM) that refers to a local function in flash that the driver's own
 * source does not define (an outlined header helper) is reported; the
 * driver's own functions are not.
 */
describe('XIP-aware code: helpers outlined into flash', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xip-xiptext-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  for (const sections of [true, false]) it(`finds a header helper the compiler kept out of line, not the driver function called outside the busy window (${sections ? 'a section per function' : 'one .text, found by the addend'})`, () => {
    const kb = join(tmp, String(sections), 'kbuild', 'drivers', 'mtd', 'chips');
    const src = join(tmp, String(sections), 'src', 'drivers', 'mtd', 'chips');
    mkdirSync(kb, { recursive: true });
    mkdirSync(src, { recursive: true });
    // What the object was compiled from: a "header" helper, the driver's get_chip(), and a __xipram function calling both.
    const c = join(tmp, 'unit.c');
    writeFileSync(
      c,
      [
        'static __attribute__((noinline)) unsigned raw_readl(const volatile unsigned *p) { return *p; }',
        'static __attribute__((noinline)) int get_chip(int x) { return x * 3; }',
        '__attribute__((noinline, section(".xiptext"))) unsigned do_write(const volatile unsigned *p, int x) { return raw_readl(p) + get_chip(x); }',
        '',
      ].join('\n'),
    );
    execFileSync('clang', ['--target=mipsel-linux-gnu', '-march=mips32r2', '-O2', ...(sections ? ['-ffunction-sections'] : []), '-fno-pic', '-mno-abicalls', '-mlong-calls', '-c', c, '-o', join(kb, 'cfi_probe.o')]);
    // The driver's source defines get_chip() and do_write(), not raw_readl().
    writeFileSync(join(src, 'cfi_probe.c'), '#include <linux/io.h>\nstatic int get_chip(int x)\n{\n\treturn x * 3;\n}\n\nunsigned __xipram do_write(const volatile unsigned *p, int x)\n{\n}\n');
    const r = checkXipText(join(tmp, String(sections), 'kbuild'), join(tmp, String(sections), 'src'));
    assert.deepEqual(r.checked, ['drivers/mtd/chips/cfi_probe.o']);
    assert.deepEqual(r.outlined, [{ object: 'drivers/mtd/chips/cfi_probe.o', fn: 'raw_readl' }]);
  });

  it('tells a definition from a call or a declaration', () => {
    const src = 'static int get_chip(struct map_info *map)\n{\n\tx = put_chip(map);\n}\nint __xipram cfi_qry_present(struct map_info *map, __u32 base,\n';
    assert.equal(definesFunction(src, 'get_chip'), true);
    assert.equal(definesFunction(src, 'cfi_qry_present'), true);
    assert.equal(definesFunction(src, 'put_chip'), false, 'a call is not a definition');
    assert.equal(definesFunction(src, 'chip'), false);
  });
});
