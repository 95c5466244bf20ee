/**
 * Progress output. On a terminal a step shows a live spinner line; in CI
 * logs (no TTY, or CI set) every change is a plain line. Everything goes to
 * stderr so that stdout stays clean for --json output.
 */
const isTty = Boolean(process.stderr.isTTY) && !process.env.CI;
let verbose = false;
let quiet = false;

export function setVerbose(v: boolean): void {
  verbose = v;
}
export function setQuiet(q: boolean): void {
  quiet = q;
}
export function isVerbose(): boolean {
  return verbose;
}

export function info(line: string): void {
  if (!quiet) process.stderr.write(`${line}\n`);
}

export function debug(line: string): void {
  if (verbose) process.stderr.write(`  ${line}\n`);
}

export function warn(line: string): void {
  process.stderr.write(`warning: ${line}\n`);
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export interface Step {
  /** Report progress within the step (e.g. a make target or a percentage). */
  update(text: string): void;
  done(summary?: string): void;
  skip(reason: string): void;
  fail(): void;
}

/** Start a named step: `[name] ...` then `[name] done in 12.3s`. */
export function step(name: string): Step {
  const start = Date.now();
  let last = '';
  let lastPlain = 0;
  let ended = false;
  if (!quiet) {
    if (isTty) process.stderr.write(`[${name}] ...`);
    else process.stderr.write(`[${name}] started\n`);
  }
  const clearLine = () => {
    if (isTty && !quiet) process.stderr.write('\r\x1b[2K');
  };
  const end = (text: string) => {
    if (ended) return;
    ended = true;
    if (quiet) return;
    clearLine();
    process.stderr.write(`[${name}] ${text}\n`);
  };
  return {
    update(text: string) {
      if (quiet || ended || text === last) return;
      last = text;
      const elapsed = fmtSeconds(Date.now() - start);
      if (isTty) {
        const width = (process.stderr.columns ?? 100) - name.length - 16;
        clearLine();
        process.stderr.write(`[${name}] ${elapsed} ${text.slice(0, Math.max(10, width))}`);
      } else if (Date.now() - lastPlain > 15000) {
        // Plain logs: one line every 15 s at most, so CI logs stay readable.
        lastPlain = Date.now();
        process.stderr.write(`[${name}] ${elapsed} ${text}\n`);
      }
    },
    done(summary?: string) {
      end(`done in ${fmtSeconds(Date.now() - start)}${summary ? `: ${summary}` : ''}`);
    },
    skip(reason: string) {
      end(`up to date (${reason})`);
    },
    fail() {
      end(`FAILED after ${fmtSeconds(Date.now() - start)}`);
    },
  };
}
