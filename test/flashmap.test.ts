import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Partition } from '../src/boards/board.ts';
import { checkFlashMap, formatFlashMap, kernelCmdline, mtdparts, readFlashMap } from '../src/boards/flashmap.ts';
import { getBoard } from '../src/boards/index.ts';
import { malta } from '../src/boards/malta.ts';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { defaultUbootEnv } from '../src/image/index.ts';
import { ubootPin } from '../src/image/uboot.ts';
import { configLines, readRecipe } from '../src/image/uboot-build.ts';
import { crc32, parseUbootEnv, parseUImageHeader, ubootEnv, uImageHeader } from '../src/image/uboot-formats.ts';
import { capture, run } from '../src/proc.ts';

const tmp = mkdtempSync(join(tmpdir(), 'flashmap-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('flash maps', () => {
  it("each loader's map: the kernel address follows from it (behind a 64-byte uImage header for U-Boot)", () => {
    assert.equal(getBoard('malta').xipPhys, 0x1e001000);
    assert.equal(getBoard('malta', 'uboot').xipPhys, 0x1e050040);
    assert.equal(getBoard('malta', 'uboot-stock').xipPhys, 0x1e050040);
    assert.equal(makeContext({ loader: 'uboot' }).variantDir.endsWith('xip-clang-uboot'), true);
    assert.equal(makeContext({}).variantDir.endsWith('xip-clang'), true);
    assert.throws(() => getBoard('malta', 'redboot'), /unknown loader 'redboot': use shim or uboot or uboot-stock or vendor/);
  });

  it('mtdparts and the command line name every partition of the map', () => {
    assert.equal(mtdparts(getBoard('malta')), 'mtdparts=1e000000.flash:4k@0x0(loader)ro,3964k@0x1000(kernel)ro,128k@0x3e0000(settings)');
    assert.equal(
      kernelCmdline(getBoard('malta', 'uboot')),
      'console=ttyS0,115200 mtdparts=1e000000.flash:320k@0x0(u-boot)ro,3648k@0x50000(kernel)ro,128k@0x3e0000(u-boot-env)',
    );
  });

  const base: Partition[] = [
    { name: 'loader', offset: 0, size: 0x10000, readOnly: true, content: 'loader' },
    { name: 'kernel', offset: 0x10000, size: 0x3e0000, readOnly: true, content: 'kernel' },
    { name: 'cfg', offset: 0x3f0000, size: 0x10000, readOnly: false, content: 'free' },
  ];
  const bad: [string, (p: Partition[]) => Partition[], RegExp][] = [
    ['overlap', (p) => [p[0]!, { ...p[1]!, offset: 0x8000 }, p[2]!], /partition 'kernel' at 0x00008000 overlaps the one before it \(ends at 0x00010000\)/],
    ['past the chip', (p) => [p[0]!, p[1]!, { ...p[2]!, size: 0x20000 }], /partition 'cfg' ends at 0x00410000, 65536 bytes past the 0x00400000-byte chip/],
    ['writable, not whole sectors', (p) => [p[0]!, p[1]!, { ...p[2]!, offset: 0x3f8000, size: 0x8000 }], /writable partition 'cfg' .* is not whole 0x00010000-byte erase sectors/],
    ['two kernels', (p) => [p[0]!, p[1]!, { ...p[2]!, content: 'kernel' }], /2 partitions hold the kernel, there must be exactly one/],
    ['no kernel', (p) => [p[0]!, p[2]!], /0 partitions hold the kernel/],
    ['loader not at 0', (p) => [{ ...p[0]!, offset: 0x1000, size: 0xf000 }, p[1]!, p[2]!], /the loader partition must start at offset 0/],
    ['same name twice', (p) => [p[0]!, p[1]!, { ...p[2]!, name: 'kernel' }], /partition name 'kernel' is used twice/],
    ['writable inside the swapped range', (p) => [p[0]!, { ...p[1]!, size: 0x3c0000 }, { ...p[2]!, offset: 0x3d0000, size: 0x30000 }], /writable partition 'cfg' starts at 0x003d0000, inside the first 0x003e0000 bytes that are word-swapped at every start .* move it to 0x003e0000 or above/],
    ['settings of one sector', (p) => [p[0]!, p[1]!, { ...p[2]!, content: 'settings' }], /settings partition 'cfg' must be writable and at least two 0x00010000-byte erase sectors/],
    ['settings read-only', (p) => [p[0]!, { ...p[1]!, size: 0x3d0000 }, { ...p[2]!, offset: 0x3e0000, size: 0x20000, readOnly: true, content: 'settings' }], /settings partition 'cfg' must be writable/],
  ];
  for (const [what, edit, re] of bad) {
    it(`refuses a map with ${what}, naming the partition`, () => {
      assert.doesNotThrow(() => checkFlashMap(malta, 'shim', base));
      assert.throws(() => checkFlashMap(malta, 'shim', edit(base.map((x) => ({ ...x })))), (e: unknown) => e instanceof XipError && e.exitCode === 2 && re.test(e.message));
    });
  }

  it("a U-Boot map needs its environment partition, writable, exactly where U-Boot's build keeps it", () => {
    assert.throws(() => checkFlashMap(malta, 'uboot', base), /no uboot-env partition/);
    const ub = malta.flashMaps.uboot!.map((p) => ({ ...p }));
    assert.doesNotThrow(() => checkFlashMap(malta, 'uboot', ub));
    const moved = ub.map((p) => (p.content === 'uboot-env' ? { ...p, offset: 0x3c0000 } : p.content === 'kernel' ? { ...p, size: 0x370000 } : p));
    assert.throws(() => checkFlashMap(malta, 'uboot', moved), /partition 'u-boot-env' must be where U-Boot keeps its environment \(offset 0x003e0000, size 0x00020000, built into U-Boot\), not 0x003c0000\+0x00020000/);
    assert.throws(() => checkFlashMap(malta, 'uboot-stock', ub.map((p) => (p.content === 'uboot-env' ? { ...p, readOnly: true } : p))), /must be writable/);
    const f = join(tmp, 'mine.json');
    assert.throws(() => checkFlashMap(malta, 'uboot', moved, f), (e: unknown) => e instanceof XipError && e.message.startsWith(`flash map ${f} (malta, uboot): `));
    assert.throws(() => readFlashMap(tmp), /not found \(or not a file\)/);
  });

  it('reads a map file, refusing bad JSON and a partition without its fields in one line', () => {
    const good = join(tmp, 'good.json');
    writeFileSync(good, JSON.stringify(base));
    assert.deepEqual(readFlashMap(good), base);
    const ctx = makeContext({ flashMap: good });
    assert.equal(ctx.board.xipPhys, 0x1e010000);
    assert.match(ctx.variantDir, /xip-clang-map-[0-9a-f]{8}$/);
    writeFileSync(join(tmp, 'bad.json'), '[{"name": "x",');
    assert.throws(() => readFlashMap(join(tmp, 'bad.json')), /flash map .*bad\.json: not valid JSON .*start from xip flashmap --json/);
    writeFileSync(join(tmp, 'field.json'), '[{"name": "x", "offset": 0}]');
    assert.throws(() => readFlashMap(join(tmp, 'field.json')), /flash map .*field\.json: 0\.size: Required; each partition needs name, offset, size, readOnly and content/);
    assert.throws(() => readFlashMap(join(tmp, 'none.json')), /flash map .*none\.json not found/);
  });

  it("the README's flash map tables are the ones `xip flashmap --markdown` prints", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    for (const loader of ['shim', 'uboot'] as const) {
      const table = formatFlashMap(getBoard('malta', loader), { markdown: true });
      assert.ok(readme.includes(table), `README lacks the ${loader} map:\n${table}`);
    }
  });
});

describe('U-Boot formats against u-boot-tools', () => {
  it('CRC-32 as zlib and U-Boot compute it', () => {
    assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  });

  it('a legacy uImage header that mkimage -l and dumpimage -l read as an uncompressed MIPS Linux kernel', async () => {
    const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff);
    const hdr = uImageHeader(data, { load: 0x9e050040, entry: 0x9e1fe0c8, name: 'XIP xip_qemu_malta' });
    const f = join(tmp, 'k.uimage');
    writeFileSync(f, Buffer.concat([hdr, data]));
    for (const tool of ['mkimage', 'dumpimage']) {
      const out = capture(tool, ['-l', f]);
      assert.match(out, /Image Name:\s+XIP xip_qemu_malta/);
      assert.match(out, /Image Type:\s+MIPS Linux Kernel Image \(uncompressed\)/);
      assert.match(out, /Data Size:\s+5000 Bytes/);
      assert.match(out, /Load Address:\s+9e050040/);
      assert.match(out, /Entry Point:\s+9e1fe0c8/);
    }
    // And the other way round: mkimage's own header parses, CRCs and all.
    const mk = join(tmp, 'mk.uimage');
    writeFileSync(join(tmp, 'data.bin'), data);
    await run('mkimage', ['-A', 'mips', '-O', 'linux', '-T', 'kernel', '-C', 'none', '-a', '0x9e050040', '-e', '0x9e1fe0c8', '-n', 'XIP xip_qemu_malta', '-d', join(tmp, 'data.bin'), mk], { env: { ...process.env, SOURCE_DATE_EPOCH: '0' } });
    const theirs = new Uint8Array(readFileSync(mk));
    assert.deepEqual(parseUImageHeader(theirs, theirs.subarray(64)), parseUImageHeader(hdr, data));
    assert.deepEqual(Buffer.from(theirs.subarray(0, 64)), Buffer.from(hdr), 'byte for byte what mkimage writes');
    const broken = new Uint8Array(data);
    broken[100]! ^= 1;
    assert.throws(() => parseUImageHeader(hdr, broken), /data CRC does not match/);
    const h2 = new Uint8Array(hdr);
    h2[20]! ^= 1;
    assert.throws(() => parseUImageHeader(h2), /header CRC does not match/);
  });

  it('a saved environment byte for byte as mkenvimage writes it; a bad CRC is what U-Boot refuses', () => {
    const board = getBoard('malta', 'uboot');
    const vars = defaultUbootEnv(board);
    assert.equal(vars.bootcmd, 'bootm 0x9e050000');
    const env = ubootEnv(vars, 0x20000, 'little');
    const text = Object.keys(vars)
      .sort()
      .map((k) => `${k}=${vars[k]}`)
      .join('\n');
    const f = join(tmp, 'env.bin');
    writeFileSync(join(tmp, 'env.txt'), `${text}\n`);
    capture('mkenvimage', ['-s', '0x20000', '-o', f, join(tmp, 'env.txt')]);
    assert.deepEqual(Buffer.from(env), readFileSync(f));
    assert.deepEqual(parseUbootEnv(env, 'little'), vars);
    const be = ubootEnv(vars, 0x20000, 'big');
    capture('mkenvimage', ['-b', '-s', '0x20000', '-o', f, join(tmp, 'env.txt')]);
    assert.deepEqual(Buffer.from(be), readFileSync(f), 'big-endian boards (mkenvimage -b)');
    env[10]! ^= 1;
    assert.throws(() => parseUbootEnv(env, 'little'), /bad CRC/);
    assert.throws(() => ubootEnv({ 'a=b': '1' }, 64, 'little'), /holds '='/);
    assert.throws(() => ubootEnv({ a: 'x'.repeat(100) }, 64, 'little'), /needs 108 bytes, the partition holds 64/);
  });
});

describe('U-Boot sources', () => {
  it('the recipe parses; its config lines set and unset', () => {
    const r = readRecipe(join(REPO_ROOT, 'firmware', 'u-boot', 'maltael.json'));
    assert.equal(r.source.package, 'u-boot');
    assert.match(configLines(r.config), /^CONFIG_AUTOBOOT=y$/m);
    assert.match(configLines(r.config), /^# CONFIG_SYS_FLASH_USE_BUFFER_WRITE is not set$/m);
  });

  it('the stock binary is pinned per Debian release; another release is refused in one line', () => {
    const b = getBoard('malta', 'uboot-stock');
    assert.equal(ubootPin(b, 'bookworm').version, '2023.01+dfsg-2+deb12u3');
    assert.equal(ubootPin(b, 'trixie').version, '2025.01-3+deb13u1');
    assert.throws(() => ubootPin(b, 'forky'), /no u-boot-qemu pinned for Debian 'forky'.*use LOADER=uboot \(built from source\) or shim/);
  });
});
