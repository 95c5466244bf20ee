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

export function badInput(message: string, details: string[] = []): XipError {
  return new XipError(message, { exitCode: EXIT.badInput, details });
}
