/**
 * Boot-log judgement, kept pure so that it can be tested against recorded
 * console logs: a MarkerMatcher is fed one console line at a time and knows
 * which markers were seen (in order), whether a failure line appeared and
 * what the kernel's `Memory:` line said. judgeBoot() turns that state plus
 * the way QEMU ended into a verdict.
 */
import { INIT_MARKERS } from '../userspace/markers.ts';

/** What a good boot prints, in this order, unless told otherwise: the boot-test init's markers. */
export const DEFAULT_MARKERS: readonly string[] = INIT_MARKERS;

export type FailureKind = 'panic' | 'timeout' | 'exit' | 'missing-marker' | 'no-poweroff';

/**
 * Lines that end a boot at once. `panic` covers everything that means the
 * kernel (or PID 1) died; `no-poweroff` means userspace asked for power off
 * and the board did not do it.
 */
export const FAILURE_PATTERNS: readonly { text: string; kind: 'panic' | 'no-poweroff' }[] = [
  { text: 'Kernel panic', kind: 'panic' },
  { text: 'Oops', kind: 'panic' },
  { text: 'BUG:', kind: 'panic' },
  { text: 'Unable to handle kernel', kind: 'panic' },
  { text: 'Attempted to kill init', kind: 'panic' },
  { text: 'Reserved instruction in kernel code', kind: 'panic' },
  { text: 'Unhandled kernel unaligned access', kind: 'panic' },
  { text: 'Unable to poweroff system', kind: 'no-poweroff' },
  // reboot(POWER_OFF) without a power-off driver halts instead.
  { text: 'reboot: System halted', kind: 'no-poweroff' },
];

export interface LineFailure {
  kind: 'panic' | 'no-poweroff';
  /** The console line, without a trailing CR. */
  line: string;
  /** 1-based line number in the stream fed so far. */
  lineNo: number;
}

export type MatchEvent =
  | { kind: 'marker'; marker: string; line: string }
  | { kind: 'failure'; failure: LineFailure }
  | { kind: 'complete' };

/** The kernel's `Memory: 245484K/262144K available (...)` line, parsed. */
export interface MemoryInfo {
  availableKiB: number;
  totalKiB: number;
}

export function parseMemoryLine(line: string): MemoryInfo | undefined {
  const m = /Memory: (\d+)K\/(\d+)K available/.exec(line);
  if (!m) return undefined;
  return { availableKiB: Number(m[1]), totalKiB: Number(m[2]) };
}

export class MarkerMatcher {
  readonly markers: readonly string[];
  private next = 0;
  private lines = 0;
  private fail: LineFailure | undefined;
  private mem: string | undefined;
  private last = '';
  /** Markers met before their turn (e.g. userspace output before the kernel's). */
  private early: { marker: string; before: string; line: string }[] = [];

  constructor(markers: readonly string[] = DEFAULT_MARKERS) {
    if (markers.length === 0) throw new Error('MarkerMatcher needs at least one marker');
    this.markers = [...markers];
  }

  /**
   * Feed one console line. Returns the most important thing this line
   * caused (a failure wins over a marker), or undefined. After a failure the
   * matcher keeps counting lines but reports nothing more.
   */
  feed(raw: string): MatchEvent | undefined {
    const line = raw.replace(/\r+$/, '').replace(/\r/g, '');
    this.lines += 1;
    // QEMU's own "terminating on signal" note is not console output.
    if (line.trim() !== '' && !/^qemu-system-\S+: terminating on signal/.test(line)) this.last = line.trim();
    if (this.fail) return undefined;

    if (this.mem === undefined && parseMemoryLine(line)) this.mem = line.trim();

    for (const p of FAILURE_PATTERNS) {
      if (line.includes(p.text)) {
        this.fail = { kind: p.kind, line: line.trim(), lineNo: this.lines };
        return { kind: 'failure', failure: this.fail };
      }
    }

    let event: MatchEvent | undefined;
    // Several markers may sit in one line, in order.
    let from = 0;
    while (this.next < this.markers.length) {
      const marker = this.markers[this.next]!;
      const at = line.indexOf(marker, from);
      if (at < 0) break;
      from = at + marker.length;
      this.next += 1;
      event = this.next === this.markers.length ? { kind: 'complete' } : { kind: 'marker', marker, line };
    }
    for (let i = this.next; i < this.markers.length; i++) {
      const marker = this.markers[i]!;
      if (line.includes(marker, from) && !this.early.some((e) => e.marker === marker)) {
        this.early.push({ marker, before: this.markers[this.next]!, line: line.trim() });
      }
    }
    return event;
  }

  /** Feed a whole log (e.g. a recorded one). Stops early at a failure. */
  feedAll(text: string): this {
    for (const line of text.split('\n')) {
      this.feed(line);
      if (this.fail) break;
    }
    return this;
  }

  get seen(): string[] {
    return this.markers.slice(0, this.next);
  }
  /** The marker still awaited, or undefined when all were seen. */
  get expected(): string | undefined {
    return this.markers[this.next];
  }
  get complete(): boolean {
    return this.next === this.markers.length;
  }
  get failure(): LineFailure | undefined {
    return this.fail;
  }
  get memoryLine(): string | undefined {
    return this.mem;
  }
  /** The last non-empty console line, or a note that there was none. */
  get lastLine(): string {
    return this.last === '' ? '(no console output)' : this.last;
  }
  get linesFed(): number {
    return this.lines;
  }
  /** Markers that appeared while an earlier one was still awaited (`before`). */
  get outOfOrder(): { marker: string; before: string; line: string }[] {
    return [...this.early];
  }
}

/** How the QEMU process ended. */
export interface BootEnd {
  exitCode: number | null;
  signal?: string | null;
  /** Killed by the runner because the boot took too long. */
  timedOut: boolean;
  /**
   * The runner signalled QEMU for another reason (a failure line). QEMU exits
   * 0 on SIGTERM, so an exit code of 0 alone does not prove a power-off.
   */
  stopped?: boolean;
  timeoutMs?: number;
}

export interface Verdict {
  ok: boolean;
  failure?: { kind: FailureKind; line: string };
}

/**
 * The verdict on a boot: success needs every marker in order, no failure
 * line, and QEMU exiting 0 by itself (the guest powered the board off).
 */
export function judgeBoot(m: MarkerMatcher, end: BootEnd): Verdict {
  const f = m.failure;
  if (f) return { ok: false, failure: { kind: f.kind, line: f.line } };
  const secs = end.timeoutMs !== undefined ? ` after ${Math.round(end.timeoutMs / 1000)} s` : '';
  if (end.timedOut) {
    if (m.complete) {
      return {
        ok: false,
        failure: { kind: 'no-poweroff', line: `all markers seen but QEMU did not exit${secs}; last line: ${m.lastLine}` },
      };
    }
    return {
      ok: false,
      failure: { kind: 'timeout', line: `timed out${secs} waiting for '${m.expected}'; last line: ${m.lastLine}` },
    };
  }
  if (end.stopped) {
    return { ok: false, failure: { kind: 'exit', line: `QEMU was stopped by the runner; last line: ${m.lastLine}` } };
  }
  if (end.exitCode !== 0) {
    const how = end.signal ? `killed by ${end.signal}` : `exited with code ${end.exitCode}`;
    return { ok: false, failure: { kind: 'exit', line: `QEMU ${how}; last line: ${m.lastLine}` } };
  }
  if (!m.complete) {
    const early = m.outOfOrder.map((e) => `'${e.marker}' before '${e.before}'`);
    const order = early.length > 0 ? ` (out of order: ${early.join(', ')})` : '';
    return {
      ok: false,
      failure: { kind: 'missing-marker', line: `marker '${m.expected}' never appeared${order}; last line: ${m.lastLine}` },
    };
  }
  return { ok: true };
}
