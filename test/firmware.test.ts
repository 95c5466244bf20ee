import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { getQemuBoard } from '../src/boards/index.ts';
import { run } from '../src/proc.ts';
import { canHideFirmware, firmwareDirs, HIDE_FIRMWARE_ENV, hiddenCommand, qemuCommand } from '../src/qemu/firmware.ts';
import { qemuArgs } from '../src/qemu/runner.ts';
import { routerNicArgs } from '../src/userspace/routerboot.ts';

/**
 * QEMU starts with nothing outside qemu-system-mips: no option ROM, no VGA
 * BIOS. Checked with QEMU's firmware directories hidden (an empty mount
 * over each), so it fails on a machine that has ipxe-qemu and seabios too.
 */
const board = getQemuBoard('malta');
const tmp = mkdtempSync(join(tmpdir(), 'xip-firmware-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const hide = canHideFirmware();
const why = 'this machine allows no private mount namespace (unshare --mount, or --map-root-user for a user)';

/** Start QEMU paused for a moment: it either fails at once (device setup) or is still running when stopped. */
async function startPaused(args: string[], hidden: boolean) {
  const c = qemuCommand(board.qemu.binary, [...args, '-S'], hidden);
  const r = await run(c.cmd, c.args, { allowFailure: true, timeoutMs: 3000, what: 'QEMU start' });
  return { ...r, out: r.tail.join('\n') };
}

describe('QEMU needs no firmware package', () => {
  it('the firmware directories QEMU searches come from `-L help`', () => {
    const dirs = firmwareDirs(board.qemu.binary);
    assert.ok(dirs.length >= 1, 'at least one directory');
    for (const d of dirs) assert.match(d, /^\//);
  });

  it('the hiding wrapper leaves every firmware directory empty (a file put there is gone)', { skip: hide ? false : why }, () => {
    const planted = join(tmp, 'roms');
    mkdirSync(planted);
    writeFileSync(join(planted, 'efi-pcnet.rom'), 'not a rom');
    const dirs = [...firmwareDirs(board.qemu.binary), planted];
    const c = hiddenCommand(dirs, 'sh', ['-c', 'for d in "$@"; do [ ! -d "$d" ] || ls -A "$d"; done', 'sh', ...dirs]);
    const r = spawnSync(c.cmd, c.args, { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'nothing listed in a hidden directory');
    // Outside the wrapper the planted file is still there: the host's mounts did not change.
    assert.equal(spawnSync('ls', [planted], { encoding: 'utf8' }).stdout.trim(), 'efi-pcnet.rom');
  });

  it("QEMU's default devices fail without the firmware (the check can fail)", { skip: hide ? false : why }, async () => {
    const r = await startPaused(['-M', board.qemu.machine, '-nographic', '-monitor', 'none', '-serial', 'stdio', '-bios', '/dev/null'], true);
    assert.equal(r.timedOut, false, 'QEMU should have stopped at once');
    assert.notEqual(r.code, 0);
    assert.match(r.out, /failed to find romfile|Could not find|vgabios/i);
  });

  it("the board's own devices, router NIC included, start without the firmware", { skip: hide ? false : why }, async () => {
    const bios = join(tmp, 'flash.bin');
    writeFileSync(bios, Buffer.alloc(board.flashSize));
    const args = qemuArgs({ board, variant: 'xip', bios, memMiB: 16, log: '/dev/null', extraArgs: routerNicArgs(board, 1) });
    const r = await startPaused(args, true);
    assert.equal(r.timedOut, true, `QEMU ended by itself (exit ${r.code}):\n${r.out}`);
    assert.doesNotMatch(r.out, /romfile|vgabios/);
  });

  it('CI can hide the firmware (so its boots prove that no ROM is needed)', { skip: process.env.CI ? false : 'not CI' }, () => {
    assert.ok(hide, `in CI: ${why}`);
  });

  it('the test suite runs every boot with the firmware hidden', { skip: hide ? false : why }, () => {
    assert.equal(process.env[HIDE_FIRMWARE_ENV], '1', 'test/setup.ts sets it for every test file');
  });
});
