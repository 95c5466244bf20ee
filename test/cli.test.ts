import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram, contextFrom, main, mergeEnv } from '../src/cli.ts';
import { REPO_ROOT } from '../src/context.ts';
import { run } from '../src/proc.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xip-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run bin/xip.mjs as a user would; returns exit code and all output. */
async function xip(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env };
  for (const k of ['BOARD', 'CONFIG', 'VARIANT', 'TOOLCHAIN', 'KERNEL_SRC', 'KERNEL_TARBALL', 'KERNEL_SHA256']) delete clean[k];
  const r = await run(process.execPath, [join(REPO_ROOT, 'bin', 'xip.mjs'), ...args], {
    env: { ...clean, ...env },
    allowFailure: true,
    tailLines: 400,
    timeoutMs: 60_000,
  });
  return { code: r.code, out: r.tail.join('\n') };
}

describe('options and environment', () => {
  it('the command line wins over the environment; empty variables are unset', () => {
    const o = mergeEnv({ variant: 'stock' }, { VARIANT: 'xip', TOOLCHAIN: 'gcc', KERNEL_SRC: '', KERNEL_TARBALL: '/t.tar.xz' });
    assert.equal(o.variant, 'stock');
    assert.equal(o.toolchain, 'gcc');
    assert.equal(o.kernelSrc, undefined);
    assert.equal(o.kernelTarball, '/t.tar.xz');
  });

  it('builds the context from the options', () => {
    const ctx = contextFrom({ variant: 'stock', toolchain: 'gcc', config: 'xip_qemu_malta', buildDir: '/b' });
    assert.equal(ctx.kbuildDir, '/b/malta/xip_qemu_malta/stock-gcc/kbuild');
    assert.equal(ctx.config, 'xip_qemu_malta_defconfig');
  });

  it('every command has a one-line description', () => {
    const p = buildProgram();
    const names = p.commands.map((c) => c.name());
    for (const n of ['doctor', 'source', 'build', 'image', 'verify', 'boot', 'run']) assert.ok(names.includes(n), n);
    for (const c of p.commands) {
      assert.ok(c.description().length > 0 && c.description().length <= 70 && !c.description().includes('\n'), c.name());
    }
  });
});

describe('exit codes (in process)', () => {
  it('--help exits 0; no command and unknown commands or options exit 2', async () => {
    assert.equal(await main(['--help']), 0);
    assert.equal(await main([]), 2);
    assert.equal(await main(['frobnicate']), 2);
    assert.equal(await main(['build', '--no-such-option']), 2);
  });

  it('a bad variant, toolchain, board or memory size exits 2 before any work', async () => {
    const b = join(dir, 'b1');
    assert.equal(await main(['--build-dir', b, '--variant', 'bogus', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--toolchain', 'icc', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--board', 'nosuch', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--variant', 'stock', 'boot', '--mem', 'lots']), 2);
    assert.equal(existsSync(b), false, 'nothing written');
  });

  it('booting something not built exits 2', async () => {
    assert.equal(await main(['--build-dir', join(dir, 'b2'), '--variant', 'stock', 'boot']), 2);
  });
});

describe('the xip command (subprocess)', () => {
  it('--help lists every command on one line each', async () => {
    const r = await xip(['--help']);
    assert.equal(r.code, 0);
    for (const n of ['doctor', 'source', 'build', 'image', 'verify', 'boot', 'run']) {
      assert.match(r.out, new RegExp(`^  ${n}( \\[options\\])? +\\S.*$`, 'm'), n);
    }
  });

  it('an error is one clear line, without a stack unless --verbose', async () => {
    const args = ['--build-dir', join(dir, 'b3'), '--kernel-tarball', join(dir, 'missing.tar.xz'), 'source'];
    const r = await xip(args);
    assert.equal(r.code, 2);
    assert.match(r.out, /^xip: error: KERNEL_TARBALL=.*missing\.tar\.xz: no such file; fix the path$/m);
    assert.doesNotMatch(r.out, /    at /);
    const v = await xip(['--verbose', ...args]);
    assert.equal(v.code, 2);
    assert.match(v.out, /    at /);
  });

  it('honours KERNEL_TARBALL and KERNEL_SHA256 from the environment', async () => {
    const r = await xip(['--build-dir', join(dir, 'b4'), 'source'], {
      KERNEL_TARBALL: join(dir, 'x.tar.xz'),
      KERNEL_SHA256: 'nothex',
    });
    assert.equal(r.code, 2);
    assert.match(r.out, /KERNEL_SHA256 'nothex' is not a sha256/);
  });
});
