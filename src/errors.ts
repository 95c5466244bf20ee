/**
 * The one error type of the toolkit. Its message is a single line a user can
 * act on: what went wrong, where, and how to fix it. The exit code tells
 * scripts what kind of failure it was.
 */
export const EXIT = {
  ok: 0,
  /** A check ran and found a problem (verify rule failed, boot failed). */
  failed: 1,
  /** The input was unusable (missing file, bad argument, malformed ELF). */
  badInput: 2,
  /** A host tool is missing or the environment cannot do what was asked. */
  environment: 3,
  /** Interrupted by a signal. */
  interrupted: 130,
} as const;

export class XipError extends Error {
  readonly exitCode: number;
  /** Extra lines shown after the message (log tail, table), never a stack. */
  readonly details: string[];

  constructor(message: string, opts: { exitCode?: number; details?: string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'XipError';
    this.exitCode = opts.exitCode ?? EXIT.failed;
    this.details = opts.details ?? [];
  }
}

/**
 * What the host refused, by errno code: not a bug of the toolkit and not bad
 * input, but something to fix on the machine (exit code 3).
 */
const HOST_ERRNO: Record<string, { what: string; fix: string }> = {
  EACCES: { what: 'permission denied', fix: 'give this user access to it (a build directory made by root? chown it) or use another --build-dir' },
  EPERM: { what: 'operation not permitted', fix: 'give this user access to it (a build directory made by root? chown it) or use another --build-dir' },
  ENOSPC: { what: 'no space left on the device', fix: 'free some space there or use a --build-dir on another file system' },
  EDQUOT: { what: 'disk quota exceeded', fix: 'free some space within the quota or use a --build-dir on another file system' },
  EROFS: { what: 'read-only file system', fix: 'use a --build-dir on a writable file system' },
};

/**
 * A Node system error (fs, net) the host caused, as an XipError with exit
 * code 3 and a message naming the path and the fix; undefined for any other
 * error.
 */
export function hostError(err: unknown): XipError | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { dest?: string };
  const h = e.code === undefined ? undefined : HOST_ERRNO[e.code];
  if (h === undefined) return undefined;
  const where = e.path !== undefined ? (e.dest !== undefined ? `${e.path} -> ${e.dest}` : e.path) : 'a file the toolkit writes';
  const op = e.syscall !== undefined ? ` (${e.syscall}, ${e.code})` : ` (${e.code})`;
  return new XipError(`${where}: ${h.what}${op}; ${h.fix}`, { exitCode: EXIT.environment, cause: err });
}

export function badInput(message: string, details: string[] = []): XipError {
  return new XipError(message, { exitCode: EXIT.badInput, details });
}

/**
 * Received bytes for an error message: quoted, control and non-ASCII bytes
 * escaped (\xNN), cut after `max` characters.
 */
export function shown(data: string, max = 60): string {
  const cut = data.length > max ? data.slice(0, max) : data;
  const esc = cut.replace(/[\\\x00-\x1f\x7f-\uffff]/g, (c) =>
    c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return `'${esc}'${data.length > max ? ` (+${data.length - max} more)` : ''}`;
}

/** The first line of an error's message, quoted as by shown(): one line, whatever a parser put in it. */
export function firstLine(err: unknown): string {
  return shown((err as Error).message.split('\n')[0] ?? '', 100);
}

/** A duration for messages: whole seconds when it is some, else milliseconds. */
export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
