import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { EXIT } from '../src/errors.ts';
import { stampPath } from '../src/pipeline.ts';
import { imageReportPath } from '../src/image/stage.ts';
import { sourcePaths } from '../src/kernel/source.ts';
import { userspacePaths } from '../src/pipeline.ts';
import { readStamp } from '../src/stamp.ts';

/**
 * The toolkit under interruption: every stage is interrupted for real while
 * its work runs (SIGINT or SIGTERM to the `xip` process, QEMU killed, make
 * failing), then the same command is run again. An interrupted stage must
 * leave no stamp and no half-written output, and the next run must finish.
 *
 * Everything happens in a build directory of its own (never build/). The
 * source stage unpacks the real Debian tarball there; the kernel stage
 * starts from a copy of the built XIP kernel directory when there is one
 * (build/, read only), so its make only relinks; a slow step is made slow
 * enough to be caught by a wrapper on PATH (sleep, then the real tool).
 */
const B = mkdtempSync(join(tmpdir(), 'xip-interrupt-'));
after(() => rmSync(B, { recursive: true, force: true }));
const ctx = makeContext({ buildDir: B });
const real = makeContext({});
const XIP_CLI = join(REPO_ROOT, 'bin', 'xip.mjs');
const fakeBin = join(B, 'fake-bin');

/** A wrapper named `tool` on PATH: record its pid, sleep, then run the real tool (or fail). */
function slowTool(tool: string, body = `sleep 60; exec /usr/bin/${tool} "$@"`): void {
  mkdirSync(fakeBin, { recursive: true });
  const p = join(fakeBin, tool);
  writeFileSync(p, `#!/bin/sh\necho $$ >> '${join(fakeBin, `${tool}.pids`)}'\n${body}\n`);
  chmodSync(p, 0o755);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Outcome {
  code: number | null;
  out: string;
}

/**
 * Run `xip args`; once `ready(out, pid)` holds (checked on every output
 * line and every 100 ms), do `act(pid)` (send a signal, kill QEMU, ...).
 * Resolves when the process has exited.
 */
function runUntil(args: string[], o: { path?: string; ready?: (out: string, pid: number) => boolean; act?: (pid: number) => void } = {}) {
  return new Promise<Outcome>((resolve, reject) => {
    const env = { ...process.env, CI: '1', PATH: o.path ? `${o.path}:${process.env.PATH}` : process.env.PATH };
    const child = spawn(process.execPath, [XIP_CLI, '--build-dir', B, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let acted = false;
    const check = () => {
      if (acted || !o.ready || !o.act || child.pid === undefined) return;
      if (o.ready(out, child.pid)) {
        acted = true;
        o.act(child.pid);
      }
    };
    child.stdout.on('data', (c: Buffer) => ((out += c.toString()), check()));
    child.stderr.on('data', (c: Buffer) => ((out += c.toString()), check()));
    const poll = setInterval(check, 100);
    const limit = setTimeout(() => child.kill('SIGKILL'), 30 * 60 * 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(limit);
      if (o.act && !acted) reject(new Error(`the moment to interrupt never came:\n${out}`));
      else resolve({ code, out });
    });
  });
}

const fileHas = (f: string, text: string) => existsSync(f) && readFileSync(f, 'utf8').includes(text);
const pidsOf = (tool: string) =>
  existsSync(join(fakeBin, `${tool}.pids`))
    ? readFileSync(join(fakeBin, `${tool}.pids`), 'utf8').trim().split('\n').map(Number)
    : [];
/** The child processes of `pid` (none once it is gone). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Whether tar has begun to fill the source stage's temporary tree: an entry inside its top directory. */
function unpacking(root: string): boolean {
  try {
    return readdirSync(root)
      .filter((n) => n.startsWith('.tmp-'))
      .some((t) => readdirSync(join(root, t)).some((top) => readdirSync(join(root, t, top)).length > 0));
  } catch {
    return false;
  }
}

const errorLines = (out: string) => out.split('\n').filter((l) => l.startsWith('xip: error:') || l.startsWith('xip: internal error:'));

describe('interrupting every stage, then running again', { timeout: 60 * 60 * 1000 }, () => {
  const src = sourcePaths(B);

  it('source: SIGINT while the tarball unpacks leaves no stamp and no tree; the next run prepares it', async () => {
    const r = await runUntil(['source'], {
      ready: (out) => /\[source\] started/.test(out) && fileHas(join(src.root, 'prepare.log'), '$ tar') && unpacking(src.root),
      act: (pid) => process.kill(pid, 'SIGINT'),
    });
    assert.equal(r.code, EXIT.interrupted, r.out);
    assert.match(r.out, /interrupted \(SIGINT\)/);
    assert.ok(!existsSync(src.stamp), 'no source stamp');
    assert.ok(!existsSync(src.tree), 'no half-unpacked tree in place');
    assert.ok(!existsSync(src.info));
    const again = await runUntil(['source']);
    assert.equal(again.code, 0, again.out);
    assert.ok(existsSync(src.stamp) && existsSync(join(src.tree, 'Makefile')));
    assert.deepEqual(readdirSync(src.root).filter((n) => n.startsWith('.tmp-')), [], 'the interrupted run\'s temp tree was removed');
    // From here on, the kernel stages use build/'s prepared tree (the same source and series: the
    // stamps agree) through a symlink: kbuild resolves it, so a copy of build/'s kernel directory
    // is up to date here and make only relinks. Nothing writes into a source tree under O=.
    const realSrc = sourcePaths(real.buildDir);
    if (readStamp(realSrc.stamp)?.hash === readStamp(src.stamp)?.hash && existsSync(join(realSrc.tree, 'Makefile'))) {
      rmSync(src.tree, { recursive: true, force: true });
      symlinkSync(realSrc.tree, src.tree);
    }
  });

  it('userspace: SIGTERM while the init compiles leaves no stamp, list or init; the compiler is stopped', async () => {
    slowTool('clang');
    const u = userspacePaths(ctx);
    const r = await runUntil(['build'], {
      path: fakeBin,
      ready: () => pidsOf('clang').length > 0,
      act: (pid) => process.kill(pid, 'SIGTERM'),
    });
    assert.equal(r.code, EXIT.interrupted, r.out);
    assert.match(r.out, /interrupted \(SIGTERM\)/);
    assert.ok(!existsSync(stampPath(ctx, 'userspace')));
    assert.ok(!existsSync(u.list) && !existsSync(u.init), 'no userspace output');
    for (const pid of pidsOf('clang')) assert.ok(!alive(pid), `compiler ${pid} still running`);
    rmSync(fakeBin, { recursive: true, force: true });
  });

  it('kernel: a failing make leaves no stamp and no vmlinux, with one error line', async () => {
    // Start from the built XIP kernel when there is one: make then only relinks.
    if (existsSync(real.vmlinux) && existsSync(stampPath(real, 'kernel'))) cpSync(real.kbuildDir, ctx.kbuildDir, { recursive: true, preserveTimestamps: true });
    slowTool('make', 'echo "make: *** [Makefile:1: fake] Error 2" >&2; exit 2');
    const r = await runUntil(['build'], { path: fakeBin });
    assert.equal(r.code, EXIT.failed, r.out);
    assert.equal(errorLines(r.out).length, 1, r.out);
    assert.match(errorLines(r.out)[0]!, /make olddefconfig failed \(exit code 2\); full log: .*kernel-build\.log/);
    assert.ok(existsSync(stampPath(ctx, 'userspace')), 'the userspace stage before it finished');
    assert.ok(!existsSync(stampPath(ctx, 'kernel')), 'no kernel stamp');
    assert.ok(!existsSync(ctx.vmlinux), 'no vmlinux left to look built');
    rmSync(fakeBin, { recursive: true, force: true });
  });

  it('kernel: SIGINT while make links leaves no stamp and no vmlinux; make is stopped; the next run finishes', async () => {
    let makePid = 0;
    // The moment: the linker runs on vmlinux. A wrapper holds exactly those links (other ld calls,
    // e.g. version probes, go straight through), so the interrupt cannot miss a link that is over
    // in a second, as the real one is on a fast machine.
    const ld = ctx.toolchain === 'llvm' ? 'ld.lld' : `${ctx.board.crossCompile}ld`;
    const holds = join(fakeBin, 'vmlinux-link.pids');
    slowTool(ld, `case " $* " in *vmlinux*) echo $$ >> '${holds}'; sleep 60;; esac\nexec /usr/bin/${ld} "$@"`);
    const r = await runUntil(['build'], {
      path: fakeBin,
      ready: (_out, pid) => existsSync(holds) && childrenOf(pid).length > 0,
      act: (pid) => {
        makePid = childrenOf(pid)[0] ?? 0;
        process.kill(pid, 'SIGINT');
      },
    });
    assert.equal(r.code, EXIT.interrupted, r.out);
    assert.ok(!existsSync(stampPath(ctx, 'kernel')), 'no kernel stamp');
    assert.ok(!existsSync(ctx.vmlinux), 'no (half-linked) vmlinux');
    assert.ok(makePid > 0 && !alive(makePid), `make ${makePid} was stopped`);
    for (const held of readFileSync(holds, 'utf8').trim().split('\n').map(Number)) assert.ok(!alive(held), `linker ${held} still running`);
    rmSync(fakeBin, { recursive: true, force: true });
    const again = await runUntil(['build']);
    assert.equal(again.code, 0, again.out);
    assert.ok(existsSync(stampPath(ctx, 'kernel')));
    const elf = readElf(ctx.vmlinux);
    assert.ok(elf.findSymbol('_text') && elf.findSymbol('__data_loc'), 'a whole XIP vmlinux');
  });

  it('image: SIGINT while the shim links leaves no stamp and no image; the next run assembles it', async () => {
    slowTool('mipsel-linux-gnu-ld');
    const r = await runUntil(['image'], {
      path: fakeBin,
      ready: () => pidsOf('mipsel-linux-gnu-ld').length > 0,
      act: (pid) => process.kill(pid, 'SIGINT'),
    });
    assert.equal(r.code, EXIT.interrupted, r.out);
    assert.ok(!existsSync(stampPath(ctx, 'image')));
    assert.ok(!existsSync(ctx.imagePath) && !existsSync(imageReportPath(ctx)), 'no image');
    assert.ok(!existsSync(ctx.publishedImage), 'nothing published');
    for (const pid of pidsOf('mipsel-linux-gnu-ld')) assert.ok(!alive(pid), `ld ${pid} still running`);
    rmSync(fakeBin, { recursive: true, force: true });
    const again = await runUntil(['image']);
    assert.equal(again.code, 0, again.out);
    assert.ok(existsSync(stampPath(ctx, 'image')));
    assert.deepEqual(readFileSync(ctx.publishedImage), readFileSync(ctx.imagePath));
  });

  it('boot: a killed QEMU is a failed boot in one line with its log kept; the next boot passes', async () => {
    const r = await runUntil(['boot', '--mem', '64'], {
      ready: (_out, pid) => fileHas(`${ctx.bootLog}.tmp`, 'Linux version') && childrenOf(pid).length > 0,
      act: (pid) => {
        const qemu = childrenOf(pid)[0];
        if (qemu !== undefined) process.kill(qemu, 'SIGKILL');
      },
    });
    assert.equal(r.code, EXIT.failed, r.out);
    assert.equal(errorLines(r.out).length, 1, r.out);
    assert.match(errorLines(r.out)[0]!, /QEMU killed by SIGKILL/);
    assert.match(readFileSync(ctx.bootLog, 'utf8'), /Linux version/);
    assert.ok(existsSync(stampPath(ctx, 'image')), 'a failed boot does not touch the build');
    const again = await runUntil(['boot', '--mem', '64']);
    assert.equal(again.code, 0, again.out);
  });

  it('boot: SIGINT stops QEMU too', async () => {
    let qemu = 0;
    const r = await runUntil(['boot', '--mem', '64'], {
      ready: (_out, pid) => fileHas(`${ctx.bootLog}.tmp`, 'Linux version') && childrenOf(pid).length > 0,
      act: (pid) => {
        qemu = childrenOf(pid)[0] ?? 0;
        process.kill(pid, 'SIGINT');
      },
    });
    assert.equal(r.code, EXIT.interrupted, r.out);
    assert.ok(qemu > 0 && !alive(qemu), 'QEMU was stopped');
  });
});
