import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Board } from '../boards/index.ts';
import type { Variant } from '../context.ts';
import { badInput, XipError } from '../errors.ts';
import { debug } from '../log.ts';
import { run } from '../proc.ts';
import { qemuCommand } from './firmware.ts';
import { DEFAULT_MARKERS, judgeBoot, MarkerMatcher, type FailureKind } from './markers.ts';
import { qemuOf } from '../boards/board.ts';

/**
 * Boots a board in QEMU and judges the console: every marker in order, no
 * panic or oops (those end the boot at once), and QEMU exiting 0 by itself
 * because the guest powered the board off. The console streams into
 * `<log>.tmp` while QEMU runs (a hung boot leaves a readable partial log)
 * and is renamed to `<log>` when QEMU has ended.
 */
export interface BootOptions {
  board: Board;
  /** Flash image (-bios): one way to boot the xip variant. */
  bios?: string;
  /**
   * Flash image as the CFI chip's backing file (-drive if=pflash): the
   * other way, persistent: what the guest writes to its flash is in the
   * file after power-off. Give a copy.
   */
  pflash?: string;
  /**
   * A lab script: each `send` is typed at the console once `expect` has
   * appeared (after the previous step's), e.g. at a boot loader's prompt.
   */
  dialog?: readonly DialogStep[];
  /** Kernel ELF (-kernel): stock variant only. */
  kernel?: string;
  variant: Variant;
  memMiB: number;
  /** RAM in KiB instead, for sizes that are not whole MiB (QEMU takes -m 7680K). */
  memKiB?: number;
  log: string;
  /** Default 60 s; in interactive mode the default is no timeout. */
  timeoutMs?: number;
  markers?: string[];
  extraArgs?: string[];
  /** Called with every console line (e.g. to talk to the guest once it is ready). */
  onLine?: (line: string) => void;
  /** `xip run`: the terminal's stdin goes to the guest console, output is echoed. */
  interactive?: boolean;
  /** Cut the power: on abort QEMU gets SIGKILL at once (what it was writing to a -drive if=pflash file stays as far as it got). */
  powerCut?: AbortSignal;
  /** Start QEMU in this network namespace (ip netns exec NAME ...; needs root). */
  netns?: string;
}

export interface DialogStep {
  expect: string;
  send: string;
}

export interface BootResult {
  ok: boolean;
  /** QEMU's exit code; null when it was killed, or stopped by the runner (timeout, abort: QEMU exits 0 on SIGTERM). */
  exitCode: number | null;
  markersSeen: string[];
  memoryLine?: string;
  failure?: { kind: FailureKind; line: string };
  ms: number;
  /** The console log written (also on failure). */
  log?: string;
  /** The last console lines, for error messages. */
  tail?: string[];
}

export const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

/** The QEMU command line of a boot (without the binary). Throws badInput on a wrong combination. */
export function qemuArgs(o: BootOptions): string[] {
  const images = [o.bios, o.pflash, o.kernel].filter((x) => x !== undefined).length;
  if (images > 1) {
    throw badInput('boot: give one of a flash image (-bios or -drive if=pflash) or a kernel (-kernel), not several');
  }
  if (o.kernel !== undefined && o.variant !== 'stock') {
    throw badInput(
      `boot: refusing -kernel for the ${o.variant} variant: an XIP kernel must boot from flash; pass its flash image as bios (xip-bios.bin)`,
    );
  }
  if (images === 0) {
    throw badInput(
      o.variant === 'stock'
        ? 'boot: nothing to boot: give the stock kernel (-kernel vmlinux) or a flash image (-bios)'
        : 'boot: nothing to boot: give the flash image (-bios xip-bios.bin); build it with `xip image`',
    );
  }
  if (o.memKiB !== undefined && (!Number.isInteger(o.memKiB) || o.memKiB < 1024)) {
    throw badInput(`boot: memory size '${o.memKiB}K' is not a whole number of KiB of at least 1024`);
  }
  if (!Number.isInteger(o.memMiB) || o.memMiB <= 0) {
    throw badInput(`boot: memory size '${o.memMiB}' is not a positive whole number of MiB (e.g. 256)`);
  }
  const file = (o.bios ?? o.pflash ?? o.kernel)!;
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw badInput(`boot: ${o.kernel === undefined ? 'flash image' : 'kernel'} ${file} not found; build it first`);
  }
  if (o.pflash !== undefined && statSync(file).size !== o.board.flashSize) {
    throw badInput(`boot: flash image ${file} is ${statSync(file).size} bytes; -drive if=pflash needs the whole ${o.board.flashSize}-byte chip: rebuild it with xip image`);
  }
  const q = qemuOf(o.board);
  const mem = o.memKiB !== undefined ? `${o.memKiB}K` : `${o.memMiB}M`;
  const args = ['-M', q.machine, '-cpu', q.cpu, '-m', mem, ...q.args];
  if (o.bios !== undefined) args.push('-bios', o.bios);
  // QEMU option values escape a comma by doubling it.
  else if (o.pflash !== undefined) args.push('-drive', `if=pflash,format=raw,file=${o.pflash.replace(/,/g, ',,')}`);
  else {
    args.push('-kernel', file);
    // QEMU's own loader passes the command line that the shim passes for xip.
    if (!(o.extraArgs ?? []).includes('-append')) args.push('-append', o.board.cmdline);
  }
  args.push(...(o.extraArgs ?? []));
  return args;
}

export async function boot(o: BootOptions): Promise<BootResult> {
  const args = qemuArgs(o);
  const markers = o.markers ?? [...DEFAULT_MARKERS];
  const matcher = new MarkerMatcher(markers);
  const timeoutMs = o.timeoutMs ?? (o.interactive ? 0 : DEFAULT_BOOT_TIMEOUT_MS);
  const tmp = `${o.log}.tmp`;
  mkdirSync(dirname(o.log), { recursive: true });
  rmSync(tmp, { force: true });

  const stopper = new AbortController();
  debug(`qemu: ${qemuOf(o.board).binary} ${args.join(' ')}`);
  const start = Date.now();
  const direct = qemuCommand(qemuOf(o.board).binary, args);
  const q = o.netns === undefined ? direct : { cmd: 'ip', args: ['netns', 'exec', o.netns, direct.cmd, ...direct.args] };
  const dialog = o.dialog && o.dialog.length > 0 && !o.interactive ? labScript(o.dialog) : undefined;
  let r;
  try {
    r = await run(q.cmd, q.args, {
      log: tmp,
      timeoutMs,
      allowFailure: true,
      abort: stopper.signal,
      kill: o.powerCut,
      what: `QEMU boot (${o.variant}, ${o.memMiB} MiB)`,
      inheritStdin: o.interactive === true,
      onData: o.interactive ? (chunk) => process.stdout.write(chunk) : dialog?.feed,
      interact: dialog?.start,
      onLine: (line) => {
        o.onLine?.(line);
        const ev = matcher.feed(line);
        // A dead kernel does not come back: stop QEMU now (interactive: let the user look).
        if (ev?.kind === 'failure' && ev.failure.kind === 'panic' && !o.interactive) stopper.abort();
        if (ev?.kind === 'failure' && ev.failure.kind === 'no-poweroff' && !o.interactive) stopper.abort();
      },
    });
  } finally {
    if (existsSync(tmp)) renameSync(tmp, o.log);
  }
  const verdict = judgeBoot(matcher, {
    exitCode: r.code,
    signal: r.signal,
    timedOut: r.timedOut,
    timeoutMs,
    stopped: stopper.signal.aborted,
  });
  return {
    ok: verdict.ok,
    // QEMU exits 0 on the SIGTERM of a timeout: that is no exit of the guest's.
    exitCode: r.timedOut || stopper.signal.aborted ? null : r.code,
    markersSeen: matcher.seen,
    memoryLine: matcher.memoryLine,
    failure: verdict.failure,
    ms: Date.now() - start,
    log: o.log,
    tail: r.tail.slice(-15),
  };
}

/** Throws an XipError saying why the boot failed (kind, line, log), with the console tail. */
export function assertBooted(r: BootResult, what: string): void {
  if (r.ok) return;
  const f = r.failure ?? { kind: 'exit', line: `QEMU exit code ${r.exitCode}` };
  const label: Record<FailureKind, string> = {
    panic: 'kernel died',
    timeout: 'boot hung',
    exit: 'QEMU failed',
    'missing-marker': 'boot incomplete',
    'no-poweroff': 'no power-off',
  };
  const where = r.log ? `; console log: ${r.log}` : '';
  throw new XipError(`${what}: ${label[f.kind]}: ${f.line}${where}`, { details: r.tail ?? [] });
}

/**
 * The console side of a lab script: watches the raw output (a prompt ends
 * without a newline) and types each step's text once its expected text has
 * appeared after the previous step.
 */
function labScript(steps: readonly DialogStep[]): { feed: (chunk: Buffer, stream: 'stdout' | 'stderr') => void; start: (send: (text: string) => void) => void } {
  let send: ((text: string) => void) | undefined;
  let seen = '';
  let next = 0;
  const advance = () => {
    while (send && next < steps.length) {
      const at = seen.indexOf(steps[next]!.expect);
      if (at < 0) return;
      seen = seen.slice(at + steps[next]!.expect.length);
      send(steps[next]!.send);
      next++;
    }
  };
  return {
    feed: (chunk, stream) => {
      // The console is QEMU's stdout; its own warnings on stderr must not split a prompt.
      if (next >= steps.length || stream !== 'stdout') return;
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      advance();
    },
    start: (s) => {
      send = s;
      advance();
    },
  };
}
