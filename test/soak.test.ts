import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext } from '../src/context.ts';
import { median, soakDir } from '../src/soak.ts';
import { HIDE_FIRMWARE_ENV } from '../src/qemu/firmware.ts';
import { runXip } from './fixtures/cli.ts';
import { qemuOf } from '../src/boards/board.ts';

/**
 * `xip soak`: N boots of the XIP flash image; failures are counted, their
 * logs kept, and one failure fails the soak. Against a fake QEMU (a script
 * on PATH that fails the boots it is told to) for the failure handling, and
 * a short real soak of the built image.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-soak-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) => runXip(args, { env, timeoutMs: 20 * 60 * 1000 });

/** A fake build dir with an "image", and a fake QEMU that fails boot number `bad` (counted in a file). */
function fakeSetup(name: string, bad: number) {
  const buildDir = join(tmp, name);
  const ctx = makeContext({ buildDir });
  mkdirSync(ctx.variantDir, { recursive: true });
  writeFileSync(ctx.imagePath, Buffer.alloc(4096));
  const bin = join(buildDir, 'bin');
  mkdirSync(bin);
  const counter = join(buildDir, 'count');
  writeFileSync(counter, '0');
  const good = ['Linux version 6.12 (fake)', 'Memory: 1K/2K available', 'Freeing unused kernel', 'XIP-USERSPACE-OK', 'XIP-POWEROFF: off'];
  writeFileSync(
    join(bin, qemuOf(ctx.board).binary),
    `#!/bin/sh
n=$(( $(cat '${counter}') + 1 )); echo $n > '${counter}'
if [ $n = ${bad} ]; then echo 'Linux version 6.12 (fake)'; echo 'Kernel panic - not syncing: boot '$n; exit 0; fi
${good.map((l) => `echo '${l}'`).join('\n')}
exit 0
`,
  );
  chmodSync(join(bin, qemuOf(ctx.board).binary), 0o755);
  return { ctx, buildDir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, [HIDE_FIRMWARE_ENV]: '' } };
}

describe('xip soak', () => {
  it('median of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
  });

  it('counts every boot, and passes when all pass', async () => {
    const f = fakeSetup('ok', 0);
    const r = await cli(['--build-dir', f.buildDir, 'soak', '--count', '4', '--json'], f.env);
    assert.equal(r.code, 0, r.out);
    const rep = JSON.parse(r.stdout) as { boots: number; passed: number; ms: number[] };
    assert.equal(rep.boots, 4);
    assert.equal(rep.passed, 4);
    assert.equal(rep.ms.length, 4);
    assert.equal(readFileSync(join(f.buildDir, 'count'), 'utf8').trim(), '4');
  });

  it('one failed boot fails the soak with one error line; its log is kept and the other boots still run', async () => {
    const f = fakeSetup('bad', 2);
    const r = await cli(['--build-dir', f.buildDir, 'soak', '--count', '3'], f.env);
    assert.equal(r.code, 1, r.out);
    assert.equal(readFileSync(join(f.buildDir, 'count'), 'utf8').trim(), '3');
    assert.match(r.out, /3 boots .*: 2 passed, 1 failed/);
    const err = r.out.split('\n').filter((l) => l.startsWith('xip: error:'));
    assert.equal(err.length, 1, r.out);
    assert.match(err[0]!, /1 of 3 boots failed; first: boot 2 \(panic\): Kernel panic/);
    const kept = join(soakDir(f.ctx), 'failed-2.log');
    assert.match(readFileSync(kept, 'utf8'), /Kernel panic - not syncing: boot 2/);
    assert.ok(!existsSync(join(soakDir(f.ctx), 'failed-1.log')));
  });

  it('refuses a bad count, the stock variant and a missing image, before booting anything', async () => {
    const f = fakeSetup('input', 0);
    for (const args of [['soak', '--count', '0'], ['soak', '--count', 'x'], ['--variant', 'stock', 'soak']]) {
      const r = await cli(['--build-dir', f.buildDir, ...args], f.env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}`);
    }
    const r = await cli(['--build-dir', join(tmp, 'empty'), 'soak', '--count', '1'], f.env);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /xip-bios\.bin not found: build it first/);
    assert.equal(readFileSync(join(f.buildDir, 'count'), 'utf8').trim(), '0');
  });

  const real = makeContext({});
  it('a short real soak: 3 boots of the built XIP image', { skip: !existsSync(real.imagePath) && 'no XIP image built (make)' }, async () => {
    const r = await cli(['soak', '--count', '3']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /3 passed, 0 failed/);
  });
});
