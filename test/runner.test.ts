import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getQemuBoard } from '../src/boards/index.ts';
import { EXIT, XipError } from '../src/errors.ts';
import { HIDE_FIRMWARE_ENV } from '../src/qemu/firmware.ts';
import { assertBooted, boot, qemuArgs, type BootOptions } from '../src/qemu/runner.ts';

/**
 * The runner against fake QEMUs: shell scripts named qemu-system-mipsel on
 * PATH that print a scripted console, record their arguments and pid, and
 * (some of them) ignore SIGTERM like QEMU with -icount does.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-runner-test-'));
const bin = join(tmp, 'bin');
const board = getQemuBoard('malta');
const bios = join(tmp, 'xip-bios.bin');
const vmlinux = join(tmp, 'vmlinux');
const savedPath = process.env.PATH;
// The fake QEMU below records its own arguments: start it directly, not under the firmware-hiding wrapper.
delete process.env[HIDE_FIRMWARE_ENV];

before(() => {
  mkdirSync(bin, { recursive: true });
  writeFileSync(bios, Buffer.alloc(4096));
  writeFileSync(vmlinux, Buffer.alloc(4096));
  process.env.PATH = `${bin}:${savedPath}`;
});
after(() => {
  process.env.PATH = savedPath;
  rmSync(tmp, { recursive: true, force: true });
});

/** Install a fake qemu whose body runs after it recorded "$@" and $$ in <case>.args / <case>.pid. */
function fakeQemu(name: string, body: string): { args: string; pid: string; term: string } {
  const files = { args: join(tmp, `${name}.args`), pid: join(tmp, `${name}.pid`), term: join(tmp, `${name}.term`) };
  const script = `#!/bin/sh
printf '%s\\n' "$@" > '${files.args}'
echo $$ > '${files.pid}'
${body}
`;
  const path = join(bin, board.qemu.binary);
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return files;
}

const GOOD_CONSOLE = [
  'Linux version 6.12.57 (fake) #1',
  'Memory: 254216K/262144K available (2345K kernel code, 300K rwdata)',
  'Freeing unused kernel image (initmem) memory: 188K',
  'XIP-INIT: pid 1, argv[0] /init',
  'XIP-USERSPACE-OK',
  'XIP-POWEROFF: requesting power off',
  'reboot: Power down',
];
const printf = (lines: string[]) => lines.map((l) => `echo '${l}'`).join('\n');

function opts(name: string, extra: Partial<BootOptions> = {}): BootOptions {
  return { board, variant: 'xip', bios, memMiB: 8, log: join(tmp, name, 'boot.log'), ...extra };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

describe('qemuArgs / boot argument checks', () => {
  it('boots xip with -bios on malta with the 24Kc and the given memory', () => {
    const a = qemuArgs(opts('args'));
    const s = a.join(' ');
    assert.ok(s.startsWith('-M malta -cpu 24Kc -m 8M '), s);
    for (const x of board.qemu.args) assert.ok(a.includes(x));
    assert.equal(a[a.indexOf('-bios') + 1], bios);
    assert.ok(!a.includes('-kernel'));
  });

  it('refuses -kernel for the xip variant before starting anything', async () => {
    const f = fakeQemu('refused', 'exit 0');
    await assert.rejects(boot(opts('refused', { bios: undefined, kernel: vmlinux })), (err: unknown) => {
      assert.ok(err instanceof XipError);
      assert.equal(err.exitCode, EXIT.badInput);
      assert.match(err.message, /refusing -kernel for the xip variant/);
      assert.match(err.message, /flash image/);
      return true;
    });
    assert.equal(existsSync(f.args), false, 'QEMU must not have been started');
  });

  it('allows -kernel for stock and passes the board command line', () => {
    const a = qemuArgs(opts('stock', { variant: 'stock', bios: undefined, kernel: vmlinux }));
    assert.equal(a[a.indexOf('-kernel') + 1], vmlinux);
    assert.equal(a[a.indexOf('-append') + 1], board.cmdline);
  });

  it('rejects both, neither, a missing file and a bad memory size', () => {
    const bad = (o: BootOptions, re: RegExp) =>
      assert.throws(
        () => qemuArgs(o),
        (err: unknown) => err instanceof XipError && err.exitCode === EXIT.badInput && re.test(err.message),
      );
    bad(opts('x', { variant: 'stock', kernel: vmlinux }), /not several/);
    bad(opts('x', { bios: undefined }), /nothing to boot.*xip image/);
    bad(opts('x', { bios: join(tmp, 'missing.bin') }), /missing\.bin not found/);
    bad(opts('x', { memMiB: 0 }), /memory size '0'/);
    bad(opts('x', { memMiB: 1.5 }), /memory size/);
  });
});

describe('boot with a fake QEMU', () => {
  it('succeeds when every marker appears and QEMU exits 0; the log holds the console', async () => {
    const f = fakeQemu('good', `${printf(GOOD_CONSOLE)}\nexit 0`);
    const o = opts('good');
    const r = await boot(o);
    assert.equal(r.ok, true, JSON.stringify(r.failure));
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.markersSeen, ['Linux version', 'Memory:', 'Freeing unused kernel', 'XIP-USERSPACE-OK', 'XIP-POWEROFF:']);
    assert.equal(r.memoryLine, GOOD_CONSOLE[1]);
    const log = readFileSync(o.log, 'utf8');
    for (const l of GOOD_CONSOLE) assert.ok(log.includes(`${l}\n`));
    assert.equal(existsSync(`${o.log}.tmp`), false);
    assert.ok(readFileSync(f.args, 'utf8').split('\n').includes('-bios'));
    assert.doesNotThrow(() => assertBooted(r, 'xip boot'));
  });

  it('streams every console line to onLine while QEMU runs (a boot session talks to the guest from there)', async () => {
    fakeQemu('online', `${printf(GOOD_CONSOLE)}\nexit 0`);
    const lines: string[] = [];
    const r = await boot(opts('online', { onLine: (l) => lines.push(l) }));
    assert.equal(r.ok, true, JSON.stringify(r.failure));
    assert.deepEqual(lines, GOOD_CONSOLE);
  });

  it('a hang ended by the timeout has no exit code, though QEMU exits 0 on SIGTERM', async () => {
    fakeQemu('term0', `trap 'exit 0' TERM\n${printf(GOOD_CONSOLE.slice(0, 2))}\nwhile :; do sleep 1; done`);
    const r = await boot(opts('term0', { timeoutMs: 1500 }));
    assert.equal(r.ok, false);
    assert.equal(r.failure?.kind, 'timeout');
    assert.equal(r.exitCode, null, 'stopped by the runner, not powered off');
  });

  it('a hang that ignores SIGTERM fails at the timeout; QEMU is killed and reaped, the partial log kept', async () => {
    const f = fakeQemu('hang', `trap '' TERM\n${printf(GOOD_CONSOLE.slice(0, 2))}\nwhile :; do sleep 1; done`);
    const o = opts('hang', { timeoutMs: 1500 });
    const r = await boot(o);
    assert.equal(r.ok, false);
    assert.equal(r.failure?.kind, 'timeout');
    assert.match(r.failure!.line, /waiting for 'Freeing unused kernel'/);
    assert.equal(r.exitCode, null, 'killed, not exited');
    const pid = Number(readFileSync(f.pid, 'utf8'));
    assert.equal(isAlive(pid), false, `fake qemu ${pid} still exists`);
    assert.match(readFileSync(o.log, 'utf8'), /Memory: 254216K/);
    assert.throws(() => assertBooted(r, 'xip boot'), /xip boot: boot hung: timed out.*console log: .*hang\/boot\.log/);
  });

  it('a panic fails at once with the panic line: QEMU is stopped, not waited for', async () => {
    const f = fakeQemu(
      'panic',
      `trap 'echo got-term > "${join(tmp, 'panic.term')}"; exit 143' TERM
${printf([...GOOD_CONSOLE.slice(0, 2), 'Kernel panic - not syncing: No working init found.'])}
while :; do sleep 1; done`,
    );
    const r = await boot(opts('panic', { timeoutMs: 600_000 }));
    assert.equal(r.ok, false);
    assert.deepEqual(r.failure, { kind: 'panic', line: 'Kernel panic - not syncing: No working init found.' });
    // Only the runner's reaction to the panic line can have sent SIGTERM (the timeout is 10 minutes away).
    assert.equal(readFileSync(f.term, 'utf8').trim(), 'got-term');
    assert.throws(() => assertBooted(r, 'stock boot'), /stock boot: kernel died: Kernel panic - not syncing/);
  });

  it('all markers but QEMU exits non-zero: exit failure', async () => {
    fakeQemu('exit1', `${printf(GOOD_CONSOLE)}\nexit 1`);
    const r = await boot(opts('exit1'));
    assert.equal(r.ok, false);
    assert.equal(r.failure?.kind, 'exit');
    assert.match(r.failure!.line, /exited with code 1/);
  });

  it('QEMU exits 0 without the userspace markers: missing marker', async () => {
    fakeQemu('missing', `${printf(GOOD_CONSOLE.slice(0, 3))}\nexit 0`);
    const r = await boot(opts('missing'));
    assert.equal(r.ok, false);
    assert.equal(r.failure?.kind, 'missing-marker');
    assert.match(r.failure!.line, /'XIP-USERSPACE-OK' never appeared/);
  });

  it('a guest that cannot power off fails with no-poweroff at once', async () => {
    fakeQemu(
      'nopoweroff',
      `${printf([...GOOD_CONSOLE.slice(0, 6), 'reboot: Power down', 'Unable to poweroff system'])}\nwhile :; do sleep 1; done`,
    );
    const r = await boot(opts('nopoweroff', { timeoutMs: 600_000 }));
    assert.equal(r.ok, false);
    assert.deepEqual(r.failure, { kind: 'no-poweroff', line: 'Unable to poweroff system' });
  });

  it('a missing QEMU is an environment error', async () => {
    rmSync(join(bin, board.qemu.binary), { force: true });
    process.env.PATH = bin;
    try {
      await assert.rejects(boot(opts('noqemu')), (err: unknown) => {
        assert.ok(err instanceof XipError);
        assert.equal(err.exitCode, EXIT.environment);
        assert.match(err.message, /qemu-system-mipsel: not found/);
        return true;
      });
    } finally {
      process.env.PATH = `${bin}:${savedPath}`;
    }
  });
});
