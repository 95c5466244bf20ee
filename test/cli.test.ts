import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getBoard } from '../src/boards/index.ts';
import { buildProgram, contextFrom, main, mergeEnv, reportError } from '../src/cli.ts';
import { COMMANDS } from '../src/commands/index.ts';
import { REPO_ROOT } from '../src/context.ts';
import { EXIT, hostError, XipError } from '../src/errors.ts';
import { run } from '../src/proc.ts';
import { runXip } from './fixtures/cli.ts';
import { dotConfig, makeImage } from './fixtures/elf/image.ts';
import { buildElf, xipKernelSpec } from './fixtures/elf/synth.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xip-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The environment variables of the global options. */
const GLOBAL_ENV = ['BOARD', 'CONFIG', 'VARIANT', 'TOOLCHAIN', 'USERSPACE', 'LWRT_ROOTFS', 'KERNEL_SRC', 'KERNEL_TARBALL', 'KERNEL_SHA256'];

/** Run bin/xip.mjs as a user would, with none of the global options' variables but `env`. */
function xip(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env };
  for (const k of GLOBAL_ENV) delete clean[k];
  return runXip(args, { env: { ...clean, ...env }, timeoutMs: 60_000 });
}

describe('options and environment', () => {
  it('the command line wins over the environment; empty variables are unset', () => {
    const o = mergeEnv({ variant: 'stock' }, { VARIANT: 'xip', TOOLCHAIN: 'gcc', KERNEL_SRC: '', KERNEL_TARBALL: '/t.tar.xz' });
    assert.equal(o.variant, 'stock');
    assert.equal(o.toolchain, 'gcc');
    assert.equal(o.kernelSrc, undefined);
    assert.equal(o.kernelTarball, '/t.tar.xz');
  });

  it('blank variables are unset (the default stands), values are trimmed, the _defconfig suffix is added once', () => {
    const o = mergeEnv({}, { VARIANT: '', TOOLCHAIN: '  ', BOARD: ' malta ', CONFIG: ' lwrt_qemu_malta ', USERSPACE: '' });
    assert.equal(o.variant, 'xip');
    assert.equal(o.toolchain, 'clang');
    assert.equal(o.board, 'malta');
    assert.equal(o.config, 'lwrt_qemu_malta_defconfig');
    assert.equal(o.userspace, undefined);
    assert.equal(mergeEnv({}, { CONFIG: 'xip_qemu_malta_defconfig' }).config, 'xip_qemu_malta_defconfig');
    assert.deepEqual(mergeEnv({}, {}), { board: 'malta', variant: 'xip', toolchain: 'clang' }); // the loader: the board's own default
  });

  it('a variant, toolchain or board that does not exist is refused while parsing, from the command line or the environment', () => {
    assert.throws(() => mergeEnv({}, { VARIANT: 'bogus' }), /'bogus' from env 'VARIANT' is invalid\. Allowed choices are xip, stock/);
    assert.throws(() => mergeEnv({}, { TOOLCHAIN: 'icc' }), /Allowed choices are clang, gcc/);
    assert.throws(() => mergeEnv({}, { BOARD: 'nosuch' }), /Allowed choices are malta/);
  });

  it('builds the context from the options', () => {
    const ctx = contextFrom({ variant: 'stock', toolchain: 'gcc', config: 'xip_qemu_malta', buildDir: '/b' });
    assert.equal(ctx.kbuildDir, '/b/malta/xip_qemu_malta/stock-gcc/kbuild');
    assert.equal(ctx.config, 'xip_qemu_malta_defconfig');
  });

  it('every command has a one-line description', () => {
    const p = buildProgram();
    const names = p.commands.map((c) => c.name());
    for (const n of ['doctor', 'source', 'build', 'flashmap', 'image', 'verify', 'boot', 'run']) assert.ok(names.includes(n), n);
    for (const c of p.commands) {
      assert.ok(c.description().length > 0 && c.description().length <= 70 && !c.description().includes('\n'), c.name());
    }
  });

  it('one module per command, in the order of the help', () => {
    const names = buildProgram().commands.map((c) => c.name());
    assert.deepEqual(names, ['doctor', 'source', 'build', 'flashmap', 'image', 'settings', 'verify', 'boot', 'run', 'measure', 'measure-rootfs', 'profile', 'bench', 'size', 'report', 'soak', 'series', 'fresh-check']);
    assert.equal(COMMANDS.length, names.length);
  });

  it('options are parsed once, by commander: --count (default 50), --mem, --timeout, --runs, --sizes', async () => {
    const parsed: Record<string, unknown> = {};
    const p = buildProgram();
    for (const c of p.commands) {
      c.action((o: object) => {
        parsed[c.name()] = o;
      });
    }
    await p.parseAsync(['soak'], { from: 'user' });
    await p.parseAsync(['boot', '--mem', '1G', '--timeout', '2.5'], { from: 'user' });
    await p.parseAsync(['measure', '--runs', '3', '--sizes', '8,16M', '--no-min-ram'], { from: 'user' });
    assert.deepEqual(parsed.soak, { count: 50 });
    assert.deepEqual(parsed.boot, { mem: 1024, timeout: 2.5 });
    assert.deepEqual(parsed.measure, { runs: 3, sizes: [8, 16], minRam: false, bootCost: true });
  });
});

describe('exit codes (in process)', () => {
  it('--help exits 0; no command and unknown commands or options exit 2', async () => {
    assert.equal(await main(['--help']), 0);
    assert.equal(await main(['help', 'soak']), 0);
    assert.equal(await main(['soak', '--help']), 0);
    assert.equal(await main([]), 2);
    assert.equal(await main(['frobnicate']), 2);
    assert.equal(await main(['build', '--no-such-option']), 2);
  });

  it('a bad variant, toolchain, board, memory size, timeout or count exits 2 before any work', async () => {
    const b = join(dir, 'b1');
    assert.equal(await main(['--build-dir', b, '--variant', 'bogus', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--variant', '', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--toolchain', 'icc', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--board', 'nosuch', 'build']), 2);
    assert.equal(await main(['--build-dir', b, '--variant', 'stock', 'boot', '--mem', 'lots']), 2);
    assert.equal(await main(['--build-dir', b, 'boot', '--timeout', '-1']), 2);
    assert.equal(await main(['--build-dir', b, 'soak', '--count', '0']), 2);
    assert.equal(await main(['--build-dir', b, 'measure', '--runs', 'x']), 2);
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

  it('a blank variable is unset and a value is trimmed (make passes VAR= as an empty string)', async () => {
    const b = join(dir, 'b5');
    const blank = await xip(['--build-dir', b, 'boot'], { VARIANT: '', TOOLCHAIN: ' ' });
    assert.equal(blank.code, 2, blank.out);
    assert.match(blank.out, /\/malta\/xip_qemu_malta\/xip-clang\/xip-bios\.bin not found: build it first/);
    const spaced = await xip(['--build-dir', b, 'boot'], { VARIANT: ' stock ', CONFIG: 'lwrt_qemu_malta' });
    assert.equal(spaced.code, 2, spaced.out);
    assert.match(spaced.out, /\/malta\/lwrt_qemu_malta\/stock-clang\/kbuild\/vmlinux not found/);
    const bad = await xip(['--build-dir', b, 'build'], { VARIANT: 'bogus' });
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, /^error: option '--variant <xip\|stock>' value 'bogus' from env 'VARIANT' is invalid\. Allowed choices are xip, stock\.$/m);
    assert.equal(existsSync(b), false, 'nothing written');
  });

  it("a handler's exit code is xip's, and --json output is all of stdout", async () => {
    const elf = buildElf(xipKernelSpec()).bytes;
    const p = join(dir, 'kgdb');
    writeFileSync(`${p}-vmlinux`, elf);
    writeFileSync(`${p}-config`, dotConfig({ CONFIG_KGDB: 'y' }));
    writeFileSync(`${p}-image`, makeImage(getBoard('malta'), elf));
    const files = ['--vmlinux', `${p}-vmlinux`, '--dot-config', `${p}-config`, '--image', `${p}-image`];
    const r = await xip(['--build-dir', join(dir, 'b6'), 'verify', ...files, '--json']);
    assert.equal(r.code, EXIT.failed, r.out);
    const report = JSON.parse(r.stdout) as { ok: boolean; failed: number[] };
    assert.equal(report.ok, false);
    assert.deepEqual(report.failed, [6]);
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
