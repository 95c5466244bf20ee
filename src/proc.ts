import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT, XipError } from './errors.ts';

/**
 * The one way the toolkit runs a program: output streams to a log file (if
 * given), the last lines are kept for error messages, a timeout ends the
 * process (SIGTERM, then SIGKILL after a grace period), and a failure turns
 * into an XipError that names the command, the log and its tail.
 */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append all output (stdout and stderr) to this file. */
  log?: string;
  /** Milliseconds before the process is killed; 0 or undefined: none. */
  timeoutMs?: number;
  /** Called with every complete output line (for progress). */
  onLine?: (line: string) => void;
  /** Data written to standard input, then closed. */
  input?: string | Buffer;
  /** Do not throw on a non-zero exit; return the result. */
  allowFailure?: boolean;
  /** How many trailing lines to keep (default 40). */
  tailLines?: number;
  /** Short human name for messages, e.g. "kernel build". */
  what?: string;
  /** Stop the process early: on abort it is ended like on a timeout (SIGTERM, then SIGKILL). */
  abort?: AbortSignal;
  /** On abort, SIGKILL the process group at once, with no grace (a power cut). */
  kill?: AbortSignal;
  /** Give the process this terminal's standard input (interactive programs); ignored when `input` is set. */
  inheritStdin?: boolean;
  /** Called with every raw output chunk as it arrives (e.g. to echo it to a terminal). */
  onData?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /**
   * Keep standard input open and hand over a function that writes to it
   * (a lab script typing at a console); ignored when `input` is set.
   */
  interact?: (send: (text: string) => void) => void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Full stdout (only kept when no log file is given, or `capture` set). */
  stdout: string;
  tail: string[];
  ms: number;
}

const KILL_GRACE_MS = 3000;

/** Processes started and not yet reaped: killed if the toolkit is interrupted. */
const live = new Set<ChildProcess>();

/**
 * Count a child started without run() (a browser that needs extra pipes)
 * among the live ones, so that an interrupted toolkit kills it too. Spawn
 * it with `detached: true`: it is killed as a process group.
 */
export function trackChild(child: ChildProcess): void {
  if (child.pid === undefined) return; // never started: nothing to kill, and no 'exit' would remove it
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export function killAllChildren(): void {
  for (const child of live) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
}

let exitHookInstalled = false;

/**
 * Kill every child still running when the process exits, whichever way it
 * exits (process.exit from a signal or crash handler, the end of main): the
 * children run in process groups of their own, so nobody else would stop a
 * `make -j` or a QEMU left behind. An 'exit' handler cannot wait, so this is
 * SIGKILL to each group at once; stopAllChildren is the gentle way, for
 * callers that still can.
 */
export function killChildrenOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => killAllChildren());
}

/**
 * Stop every running child for an interrupted toolkit: SIGTERM to each
 * process group first, so that make deletes the target it was writing
 * (no half-written vmlinux or object survives for the next run to take as
 * built), then SIGKILL whatever is still there after graceMs.
 */
export async function stopAllChildren(graceMs = KILL_GRACE_MS): Promise<void> {
  for (const child of live) signalGroup(child.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  killAllChildren();
}

/**
 * Work to undo when the toolkit stops, whichever way: unmounting a fresh
 * root, say. Registered by the code that made the mess, removed by it when
 * it cleaned up itself; run by the signal handler after the children have
 * been stopped.
 */
const cleanups = new Set<() => Promise<void> | void>();

export function addCleanup(fn: () => Promise<void> | void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Run every registered cleanup once (newest first); errors are reported, not thrown. */
export async function runCleanups(): Promise<void> {
  const all = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of all) {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`xip: cleanup failed: ${(err as Error).message}\n`);
    }
  }
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const start = Date.now();
  const what = opts.what ?? `${cmd} ${args.slice(0, 3).join(' ')}`.trim();
  if (opts.log) mkdirSync(dirname(opts.log), { recursive: true });
  const logStream = opts.log ? createWriteStream(opts.log, { flags: 'a' }) : undefined;
  logStream?.write(`$ ${[cmd, ...args].join(' ')}\n`);
  const tailMax = opts.tailLines ?? 40;
  const tail: string[] = [];
  let stdout = '';
  let partial = '';

  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input !== undefined || opts.interact ? 'pipe' : opts.inheritStdin ? 'inherit' : 'ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout kills make's children too
    });
    live.add(child);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (killTimer) return;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const timer =
      opts.timeoutMs && opts.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            stop();
          }, opts.timeoutMs)
        : undefined;
    const onAbort = () => stop();
    if (opts.abort?.aborted) stop();
    else opts.abort?.addEventListener('abort', onAbort, { once: true });
    const onKill = () => signalGroup(child.pid, 'SIGKILL');
    if (opts.kill?.aborted) onKill();
    else opts.kill?.addEventListener('abort', onKill, { once: true });

    const onData = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      opts.onData?.(chunk, stream);
      logStream?.write(chunk);
      if (!logStream) stdout += text;
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > tailMax) tail.shift();
        opts.onLine?.(line);
      }
    };
    child.stdout?.on('data', onData('stdout'));
    child.stderr?.on('data', onData('stderr'));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else if (opts.interact && child.stdin) {
      const stdin = child.stdin;
      stdin.on('error', () => undefined); // the process may end before it reads what was typed
      opts.interact((text) => {
        if (!stdin.destroyed) stdin.write(text);
      });
    }

    child.on('error', (err: NodeJS.ErrnoException) => {
      live.delete(child);
      opts.abort?.removeEventListener('abort', onAbort);
      opts.kill?.removeEventListener('abort', onKill);
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      logStream?.end();
      if (err.code === 'ENOENT') {
        reject(
          new XipError(`${cmd}: not found on PATH; run 'xip doctor --install' (or 'make deps') to install it`, {
            exitCode: EXIT.environment,
          }),
        );
      } else reject(new XipError(`${what}: could not start ${cmd}: ${err.message}`, { exitCode: EXIT.environment }));
    });
    child.on('close', (code, signal) => {
      live.delete(child);
      opts.abort?.removeEventListener('abort', onAbort);
      opts.kill?.removeEventListener('abort', onKill);
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      if (partial) {
        tail.push(partial);
        if (tail.length > tailMax) tail.shift();
        opts.onLine?.(partial);
      }
      const result: RunResult = { code, signal, timedOut, stdout, tail, ms: Date.now() - start };
      const finish = () => {
        if (code === 0 || opts.allowFailure) return resolve(result);
        const why = timedOut
          ? `timed out after ${Math.round((opts.timeoutMs ?? 0) / 1000)}s`
          : signal
            ? `killed by ${signal}`
            : `exit code ${code}`;
        const where = opts.log ? `; full log: ${opts.log}` : '';
        reject(new XipError(`${what} failed (${why})${where}`, { details: tail.slice(-20) }));
      };
      if (logStream) logStream.end(finish);
      else finish();
    });
  });
}

function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
}

/** Run a short command and return its stdout; throws XipError on failure. */
export function capture(cmd: string, args: readonly string[], opts: { cwd?: string; what?: string } = {}): string {
  return checked(spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }), cmd, opts.what);
}

/** capture() for binary data: `input` on standard input, standard output as bytes. */
export function captureBytes(cmd: string, args: readonly string[], input: Uint8Array, what?: string): Uint8Array {
  return new Uint8Array(checked(spawnSync(cmd, args, { input, maxBuffer: 64 * 1024 * 1024 }), cmd, what) as Buffer);
}

/** The output of a finished spawnSync; an XipError naming the command when it could not run or failed. */
function checked<T extends string | Buffer>(r: SpawnSyncReturns<T>, cmd: string, what?: string): T {
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new XipError(`${cmd}: not found on PATH; run 'xip doctor --install' (or 'make deps') to install it`, {
        exitCode: EXIT.environment,
      });
    }
    throw new XipError(`${what ?? cmd}: ${r.error.message}`, { exitCode: EXIT.environment });
  }
  if (r.status !== 0) {
    const lines = `${String(r.stderr ?? '')}${typeof r.stdout === 'string' ? r.stdout : ''}`.trim().split('\n').slice(-10);
    throw new XipError(`${what ?? cmd} failed (exit code ${r.status})`, { details: lines });
  }
  return r.stdout;
}
