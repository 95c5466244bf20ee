import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { DEFAULT_MARKERS, judgeBoot, MarkerMatcher, parseMemoryLine, type BootEnd } from '../src/qemu/markers.ts';

/**
 * The marker matcher against console logs in test/fixtures/boot-logs/ (see
 * the README there for where each one comes from). Each log is fed line by
 * line, as the runner does, then judged with the way QEMU ended.
 */
const dir = join(REPO_ROOT, 'test', 'fixtures', 'boot-logs');
const fixture = (name: string) => readFileSync(join(dir, name), 'utf8');

const exited0: BootEnd = { exitCode: 0, timedOut: false };
const timedOut: BootEnd = { exitCode: null, signal: 'SIGKILL', timedOut: true, timeoutMs: 60_000 };

function feed(name: string): MarkerMatcher {
  const m = new MarkerMatcher();
  for (const line of fixture(name).split('\n')) m.feed(line);
  return m;
}

describe('MarkerMatcher on recorded boot logs', () => {
  it('a real stock boot: all markers in order, the Memory: line, clean power-off', () => {
    const m = feed('stock-ok.log');
    assert.deepEqual(m.seen, [...DEFAULT_MARKERS]);
    assert.equal(m.complete, true);
    assert.equal(m.failure, undefined);
    assert.match(m.memoryLine ?? '', /^(\[\s*[\d.]+\] )?Memory: \d+K\/262144K available/);
    // The init proved it ran: pid 1, started as /init from the initramfs.
    assert.match(fixture('stock-ok.log'), /XIP-INIT: pid 1, argv\[0\] \/init/);
    assert.deepEqual(judgeBoot(m, exited0), { ok: true });
  });

  it('a real boot without /dev/console in the initramfs still passes: init makes the node', () => {
    const m = feed('stock-ok-no-dev-console.log');
    assert.match(fixture('stock-ok-no-dev-console.log'), /Warning: unable to open an initial console/);
    assert.deepEqual(m.seen, [...DEFAULT_MARKERS]);
    assert.match(m.memoryLine ?? '', /Memory: \d+K\/16384K available/);
    assert.deepEqual(judgeBoot(m, exited0), { ok: true });
  });

  it('the same log is not a success if QEMU had to be killed', () => {
    const v = judgeBoot(feed('stock-ok.log'), timedOut);
    assert.equal(v.ok, false);
    assert.equal(v.failure?.kind, 'no-poweroff');
  });

  it('a panic is reported with its line, at that line', () => {
    const m = new MarkerMatcher();
    const lines = fixture('panic.log').split('\n');
    let at = -1;
    for (const [i, line] of lines.entries()) {
      const ev = m.feed(line);
      if (ev?.kind === 'failure') {
        at = i;
        break;
      }
    }
    assert.ok(at >= 0, 'failure detected');
    assert.match(lines[at]!, /Kernel panic - not syncing/);
    const v = judgeBoot(m, timedOut);
    assert.equal(v.ok, false);
    assert.equal(v.failure?.kind, 'panic');
    assert.match(v.failure!.line, /^(\[\s*[\d.]+\] )?Kernel panic - not syncing: /);
    assert.deepEqual(m.seen, ['Linux version', 'Memory:', 'Freeing unused kernel']);
  });

  it('an oops is a failure even when the boot goes on and QEMU exits 0', () => {
    const m = feed('oops.log');
    assert.equal(m.failure?.kind, 'panic');
    assert.match(m.failure!.line, /Unable to handle kernel paging request/);
    const v = judgeBoot(m, exited0);
    assert.equal(v.ok, false);
    assert.equal(v.failure?.kind, 'panic');
  });

  it('a hang (the log just stops) fails as a timeout naming the awaited marker', () => {
    const m = feed('hang.log');
    assert.equal(m.failure, undefined);
    assert.equal(m.complete, false);
    const v = judgeBoot(m, timedOut);
    assert.equal(v.ok, false);
    assert.equal(v.failure?.kind, 'timeout');
    assert.match(v.failure!.line, new RegExp(`waiting for '${m.expected}'`));
    assert.match(v.failure!.line, /after 60 s/);
  });

  it('markers out of order are a missing marker, and the message says which came early', () => {
    const m = feed('out-of-order.log');
    assert.equal(m.failure, undefined);
    const v = judgeBoot(m, exited0);
    assert.equal(v.ok, false);
    assert.equal(v.failure?.kind, 'missing-marker');
    assert.match(v.failure!.line, /'XIP-USERSPACE-OK' never appeared/);
    assert.match(v.failure!.line, /'XIP-USERSPACE-OK' before 'Freeing unused kernel'/);
  });

  it('a guest that cannot power off is no-poweroff, from its own line', () => {
    const m = feed('no-poweroff.log');
    assert.equal(m.complete, true);
    assert.equal(m.failure?.kind, 'no-poweroff');
    const v = judgeBoot(m, timedOut);
    assert.equal(v.failure?.kind, 'no-poweroff');
    assert.match(v.failure!.line, /reboot: System halted|Unable to poweroff system/);
  });
});

describe('MarkerMatcher details', () => {
  it('needs the markers in order within a line too, and ignores CRs', () => {
    const m = new MarkerMatcher(['A1', 'B2', 'C3']);
    assert.deepEqual(m.feed('B2 A1\r'), { kind: 'marker', marker: 'A1', line: 'B2 A1' });
    assert.deepEqual(m.seen, ['A1']);
    assert.deepEqual(m.feed('xx B2 C3'), { kind: 'complete' });
    assert.equal(m.complete, true);
  });

  it('detects every failure pattern', () => {
    for (const line of [
      'Kernel panic - not syncing: VFS',
      'Oops[#1]:',
      'BUG: scheduling while atomic',
      'CPU 0 Unable to handle kernel paging request at virtual address 00000004',
      'Attempted to kill init! exitcode=0x00000000',
      'Reserved instruction in kernel code[#1]:',
      'Unhandled kernel unaligned access[#1]:',
    ]) {
      const m = new MarkerMatcher();
      const ev = m.feed(`[    1.234] ${line}`);
      assert.equal(ev?.kind, 'failure', line);
      assert.equal(m.failure?.kind, 'panic');
      assert.equal(m.failure?.line, `[    1.234] ${line}`);
    }
    const m = new MarkerMatcher();
    m.feed('Unable to poweroff system');
    assert.equal(m.failure?.kind, 'no-poweroff');
  });

  it('keeps the first failure and the first Memory: line', () => {
    const m = new MarkerMatcher();
    m.feed('Memory: 100K/200K available (1K kernel code)');
    m.feed('Memory: 5K/6K available');
    m.feed('Oops[#1]:');
    m.feed('Kernel panic - not syncing: Fatal exception');
    assert.equal(m.memoryLine, 'Memory: 100K/200K available (1K kernel code)');
    assert.equal(m.failure?.line, 'Oops[#1]:');
  });

  it('parses the Memory: line', () => {
    assert.deepEqual(parseMemoryLine('[ 0.0] Memory: 5304K/8192K available (1234K kernel code, 56K rwdata)'), {
      availableKiB: 5304,
      totalKiB: 8192,
    });
    assert.equal(parseMemoryLine('Memory: lots'), undefined);
  });

  it('judges a clean exit with missing markers, and a crash exit', () => {
    const m = new MarkerMatcher();
    m.feed('Linux version 6.12');
    assert.equal(judgeBoot(m, exited0).failure?.kind, 'missing-marker');
    const c = judgeBoot(m, { exitCode: 1, timedOut: false });
    assert.equal(c.failure?.kind, 'exit');
    assert.match(c.failure!.line, /exited with code 1; last line: Linux version 6\.12/);
  });

  it('refuses an empty marker list', () => {
    assert.throws(() => new MarkerMatcher([]));
  });
});
