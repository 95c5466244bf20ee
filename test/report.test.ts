import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { judgeTargets, RESULTS_SCHEMA, type Results } from '../src/measure/index.ts';
import { formatResults, mdTable } from '../src/report/format.ts';
import { BEGIN, END, findResults, readResults, renderSection, replaceBlock, updateReadme } from '../src/report/readme.ts';

/** Report generation from a results object with known numbers. */
const mem = (available: number, total: number, reserved: number) => ({
  availableKiB: available,
  totalKiB: total,
  kernelCodeKiB: 1745,
  rwdataKiB: 496,
  rodataKiB: 148,
  initKiB: 158,
  bssKiB: 172,
  reservedKiB: reserved,
  cmaReservedKiB: 0,
});

function results(over: Partial<Results> = {}): Results {
  const x8 = mem(6084, 8192, 1868);
  const s8 = mem(4012, 8192, 3940);
  const diff = Object.fromEntries(Object.keys(x8).map((k) => [k, x8[k as keyof typeof x8] - s8[k as keyof typeof s8]])) as typeof x8;
  return {
    schema: RESULTS_SCHEMA,
    board: 'malta',
    config: 'xip_qemu_malta_defconfig',
    toolchain: 'clang',
    userspace: 'init',
    machine: {
      date: '2026-11-21T20:00:00.000Z',
      cpu: 'Test CPU',
      cores: 2,
      memMiB: 1024,
      node: 'v20.0.0',
      qemu: 'QEMU emulator version 7.2.22',
      clang: 'Debian clang version 14.0.6',
      gcc: 'mipsel-linux-gnu-gcc 12.2.0',
      binutils: 'GNU ld 2.40',
      kernelVersion: '6.12.117',
      gitCommit: 'abc1234',
    },
    commands: ['qemu ...'],
    kernelSizes: {
      xip: { text: 1787568, rodata: 155440, initText: 109388, ramImage: 0xb5290, ramStartPhys: 0x100000 },
      stock: { text: 1787568, rodata: 155440, initText: 109388, ramImage: 0x2bb290, ramStartPhys: 0x100000 },
    },
    ram: {
      sizes: [{ memMiB: 8, xip: x8, stock: s8, diff }],
      requiredGainKiB: 2005,
      reservedPerPageBytes: { xip: 32, stock: 32 },
    },
    minRam: {
      xip: {
        minKiB: 2368,
        below: { kib: 2304, kind: 'panic', line: 'Kernel panic - not syncing: System is deadlocked on memory' },
        attempts: [{ kib: 2368, ok: true }],
        account: { totalKiB: 2368, availableKiB: 292, reservedKiB: 1836, belowKernelKiB: 1024, kernelImageKiB: 728, hashTablesKiB: 8, otherReservedKiB: 76 },
      },
      stock: { minKiB: 4480, attempts: [{ kib: 4480, ok: true }] },
      savedKiB: 2112,
      stepKiB: 64,
    },
    bootCost: {
      method: 'test',
      memMiB: 64,
      xip: [{ toStartKernel: 1037807, toPid1: 37109253, toRunInit: 36924711 }],
      vmlinux: [{ toStartKernel: 176866, toPid1: 35655333, toRunInit: 35542650 }],
      vmlinuz: [
        { toStartKernel: 45992331, toPid1: 81470794, toRunInit: 81358111 },
        { toStartKernel: 45992331, toPid1: 81465913, toRunInit: 81358111 },
      ],
    },
    notes: [],
    ...over,
  };
}

describe('targets', () => {
  it('judges each target from the numbers, with the margin', () => {
    const t = judgeTargets(results());
    assert.deepEqual(
      t.map((x) => x.met),
      [true, true, true, true],
    );
    assert.match(t[0]!.name, /at 8 MiB/);
    assert.match(t[0]!.detail, /\+2072 KiB \(\+67 KiB against the target\)/);
    assert.match(t[1]!.detail, /2112 KiB less \(\+64 KiB against the target\)/);
    assert.match(t[2]!.detail, /37,109,253 vs 81,470,794/);
  });

  it('a missed target says NO and by how much', () => {
    const r = results();
    r.minRam!.savedKiB = 1900;
    r.ram!.requiredGainKiB = 2100;
    const t = judgeTargets(r);
    assert.equal(t[0]!.met, false);
    assert.match(t[0]!.detail, /-28 KiB against the target/);
    assert.equal(t[1]!.met, false);
    assert.match(t[1]!.detail, /-148 KiB against the target/);
    assert.match(formatResults(r), /\| NO  \|/);
  });

  it('without a PID 1 count (/init is a script), the exec of /init stands in, and says so', () => {
    const r = results();
    for (const c of [...r.bootCost!.xip, ...r.bootCost!.vmlinuz]) delete c.toPid1;
    const t = judgeTargets(r).find((x) => x.name.startsWith('boot to PID 1'));
    assert.match(t?.name ?? '', /to the exec of \/init: run_init_process/);
    assert.match(t?.detail ?? '', /36,924,711 vs 81,358,111/);
    assert.equal(t?.met, true);
  });

  it('nothing measured: no targets', () => {
    assert.deepEqual(judgeTargets(results({ ram: undefined, minRam: undefined, bootCost: undefined })), []);
  });
});

describe('tables', () => {
  it('markdown tables with right-aligned numbers', () => {
    assert.equal(mdTable(['a', 'b'], [['x', 1], ['yy', 22]]), '| a   |   b |\n| --- | --: |\n| x   |   1 |\n| yy  |  22 |');
  });

  it('the terminal report shows every section and runs that differ', () => {
    const out = formatResults(results());
    for (const s of ['RAM', 'Minimum RAM', 'Boot cost', 'Targets']) assert.match(out, new RegExp(s));
    assert.match(out, /\| available +\| +6084 \| +4012 \| +\+2072 \|/);
    assert.match(out, /81,470,794 \/ 81,465,913/);
    assert.match(out, /2304 KiB: panic: Kernel panic - not syncing: System is deadlocked on memory/);
  });
});

describe('README section', () => {
  it('renders machine, tables, where the RAM goes, the method, and missing configs', () => {
    const s = renderSection([{ r: results(), file: 'bench/results-xip_qemu_malta.json' }], ['router config: no defconfig']);
    assert.match(s, /^### Results/);
    assert.match(s, /Test CPU, 2 cores/);
    assert.match(s, /QEMU emulator version 7\.2\.22/);
    assert.match(s, /xip at 2368 KiB: 292 KiB free .* 1024 KiB below the kernel's link address .* 728 KiB kernel RAM image/);
    assert.match(s, /What QEMU does not model/);
    assert.match(s, /Not measured: router config: no defconfig/);
    assert.match(s, /44,954,524 fewer instructions to start_kernel, 44,361,541 fewer to PID 1/);
  });

  it("says the board's link address, device tree and QEMU machine; a board it does not know is bad input", () => {
    const s = renderSection([{ r: results(), file: 'bench/results-xip_qemu_malta.json' }]);
    assert.match(s, /below the kernel's link address 0x80100000 \(malta\.dts \/memreserve\/s it all/);
    assert.match(s, /reserved only because malta\.dts says so/);
    assert.match(s, /each variant boots in QEMU malta at each size/);
    assert.match(s, /QEMU's Count rate \(160 MHz\)/);
    assert.throws(() => renderSection([{ r: results({ board: 'nosuch' }), file: 'bench/x.json' }]), /bench\/x\.json: measured on board 'nosuch', which this toolkit does not know/);
  });

  it('replaces only the marked block, the same way every time', () => {
    const readme = `# T\n\nintro\n\n${BEGIN}\nold\n${END}\n\n## After\n`;
    const once = replaceBlock(readme, 'NEW');
    assert.equal(once, `# T\n\nintro\n\n${BEGIN}\nNEW\n${END}\n\n## After\n`);
    assert.equal(replaceBlock(once, 'NEW'), once);
  });

  it('refuses a README without the markers, or with them twice or reversed', () => {
    assert.throws(() => replaceBlock('# T\n', 'x'), /needs exactly one/);
    assert.throws(() => replaceBlock(`${END}\n${BEGIN}\n`, 'x'), /needs exactly one/);
    assert.throws(() => replaceBlock(`${BEGIN}\n${END}\n${BEGIN}\n`, 'x'), /needs exactly one/);
  });

  it('updateReadme reads bench/results-*.json and rewrites the README; a bad results file is bad input', () => {
    const repo = mkdtempSync(join(tmpdir(), 'xip-report-test-'));
    try {
      mkdirSync(join(repo, 'bench'));
      writeFileSync(join(repo, 'README.md'), `# R\n${BEGIN}\n${END}\ntail\n`);
      assert.throws(() => updateReadme(repo), /no bench\/results-\*\.json/);
      writeFileSync(join(repo, 'bench', 'results-lwrt_qemu_malta.json'), JSON.stringify(results({ config: 'lwrt_qemu_malta_defconfig' })));
      writeFileSync(join(repo, 'bench', 'results-xip_qemu_malta.json'), JSON.stringify(results()));
      assert.deepEqual(
        findResults(join(repo, 'bench')).map((f) => f.slice(repo.length + 1)),
        ['bench/results-xip_qemu_malta.json', 'bench/results-lwrt_qemu_malta.json'],
      );
      const u = updateReadme(repo);
      assert.equal(u.changed, true);
      const text = readFileSync(join(repo, 'README.md'), 'utf8');
      assert.ok(text.startsWith(`# R\n${BEGIN}\n### Results`));
      assert.ok(text.endsWith(`${END}\ntail\n`));
      assert.ok(text.indexOf('#### xip_qemu_malta_defconfig') < text.indexOf('#### lwrt_qemu_malta_defconfig'));
      assert.equal(updateReadme(repo).changed, false);
      writeFileSync(join(repo, 'bench', 'results-bad.json'), '{"schema": 99}');
      assert.throws(() => readResults(join(repo, 'bench', 'results-bad.json')), /not a results file of this version/);
      writeFileSync(join(repo, 'bench', 'results-bad.json'), '{oops');
      assert.throws(() => updateReadme(repo), /results-bad\.json: not a results file/);
      // Nothing half-written: the README is unchanged after the failure.
      assert.equal(readFileSync(join(repo, 'README.md'), 'utf8'), text);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });
});
