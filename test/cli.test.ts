import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram, contextFrom, main, mergeEnv, reportError } from '../src/cli.ts';
import { REPO_ROOT } from '../src/context.ts';
import { EXIT, hostError, XipError } from '../src/errors.ts';
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

/** Whether a process is still running (a zombie waiting for its parent counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!running(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/**
 * A toolkit process with the CLI's handlers: it starts a child the way
 * every command does (proc.run: a process group of its own), registers a
 * cleanup, then ends in the given way once the child runs. Prints
 * "child <pid>".
 */
const CRASH_SCRIPT = `
import { writeFileSync } from 'node:fs';
import { installSignalHandlers } from ${JSON.stringify(join(REPO_ROOT, 'src', 'cli.ts'))};
import { XipError } from ${JSON.stringify(join(REPO_ROOT, 'src', 'errors.ts'))};
import { addCleanup, run } from ${JSON.stringify(join(REPO_ROOT, 'src', 'proc.ts'))};
const [how, marker] = process.argv.slice(2);
installSignalHandlers();
addCleanup(() => writeFileSync(marker, 'cleaned up'));
void run('sh', ['-c', 'echo $$; exec sleep 60'], {
  allowFailure: true,
  onLine: (pid) => {
    process.stdout.write(\`child \${pid}\\n\`);
    if (how === 'throw') setTimeout(() => { throw new TypeError('boom in an event handler'); }, 10);
    if (how === 'reject') void Promise.reject(new XipError('gdbstub: packet with a bad checksum', { exitCode: 3 }));
    if (how === 'exit') process.exit(0);
  },
});
`;

describe('a crash stops the children (subprocess)', () => {
  const script = () => {
    const p = join(dir, 'crash.ts');
    if (!existsSync(p)) writeFileSync(p, CRASH_SCRIPT);
    return p;
  };
  const crash = async (how: string) => {
    const marker = join(dir, `cleanup-${how}`);
    const r = await run(process.execPath, ['--import', 'tsx', script(), how, marker], {
      cwd: REPO_ROOT,
      allowFailure: true,
      tailLines: 100,
      timeoutMs: 60_000,
    });
    const out = r.tail.join('\n');
    const pid = Number(/^child (\d+)$/m.exec(out)?.[1]);
    assert.ok(pid > 0, `the child started:\n${out}`);
    return { code: r.code, out, pid, cleaned: existsSync(marker) };
  };

  it('an exception thrown in an event handler: one line, exit 1, child stopped, cleanups run', async () => {
    const r = await crash('throw');
    assert.equal(r.code, EXIT.failed, r.out);
    assert.match(r.out, /^xip: internal error: boom in an event handler$/m);
    assert.equal(r.out.match(/^xip: /gm)?.length, 1, r.out);
    assert.doesNotMatch(r.out, /    at /, 'no stack without --verbose');
    assert.ok(await gone(r.pid), `child ${r.pid} still runs`);
    assert.ok(r.cleaned, 'the registered cleanup ran');
  });

  it("a rejection nobody handled: the XipError's line and exit code, child stopped", async () => {
    const r = await crash('reject');
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, /^xip: error: gdbstub: packet with a bad checksum$/m);
    assert.ok(await gone(r.pid), `child ${r.pid} still runs`);
    assert.ok(r.cleaned, 'the registered cleanup ran');
  });

  it('process.exit with a child still running kills it', async () => {
    const r = await crash('exit');
    assert.equal(r.code, 0, r.out);
    assert.ok(await gone(r.pid), `child ${r.pid} still runs`);
  });
});

describe('reportError', () => {
  const capture = (err: unknown, verbose = false) => {
    const lines: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      return { code: reportError(err, verbose), text: lines.join('') };
    } finally {
      process.stderr.write = orig;
    }
  };
  const sysError = (code: string, syscall: string, path: string) =>
    Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path, errno: -1 });

  it('EACCES, ENOSPC, EROFS, EDQUOT are environment errors (3) naming the path and a fix', () => {
    for (const [code, what] of [
      ['EACCES', 'permission denied'],
      ['ENOSPC', 'no space left on the device'],
      ['EROFS', 'read-only file system'],
      ['EDQUOT', 'disk quota exceeded'],
    ] as const) {
      const r = capture(sysError(code, 'open', '/b/malta/kbuild/vmlinux'));
      assert.equal(r.code, EXIT.environment, code);
      assert.match(r.text, new RegExp(`^xip: error: /b/malta/kbuild/vmlinux: ${what} \\(open, ${code}\\); .*--build-dir.*\n$`), code);
    }
    const rename = Object.assign(sysError('EACCES', 'rename', '/b/x.tmp'), { dest: '/b/x' });
    assert.match(hostError(rename)!.message, /^\/b\/x\.tmp -> \/b\/x: permission denied/);
  });

  it('other errors: an XipError keeps its code, anything else is an internal error (1)', () => {
    assert.equal(capture(new XipError('bad', { exitCode: 2, details: ['tail'] })).code, 2);
    assert.equal(hostError(sysError('ENOENT', 'open', '/x')), undefined);
    const r = capture(new RangeError('oops'));
    assert.equal(r.code, EXIT.failed);
    assert.match(r.text, /^xip: internal error: oops\n/);
  });
});
