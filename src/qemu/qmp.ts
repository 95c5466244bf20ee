import { connect, type Socket } from 'node:net';
import { formatMs, shown, XipError } from '../errors.ts';

/** The longest line taken before the stream counts as garbage (replies are a few KiB). */
export const MAX_LINE = 4 * 1024 * 1024;

interface Waiter {
  resolve: (msg: Record<string, unknown>) => void;
  reject: (err: XipError) => void;
}

/**
 * A tiny QMP (QEMU Machine Protocol) client: JSON objects, one per line.
 * Used for `query-replay` (guest instructions executed so far, when QEMU runs
 * with `-icount shift=0,rr=record,...`) and human-monitor commands.
 *
 * Nothing QEMU sends can throw out of the socket's handlers (an exception
 * there would bypass every caller's cleanup): a line that is not a JSON
 * object, a closed connection or a reply that does not come in time fails
 * the client. The pending command and every later one reject with that
 * XipError, and the connection is closed (after a lost reply, commands and
 * replies would no longer pair up).
 */
export class QmpClient {
  private sock: Socket;
  private buf = '';
  private replies: Record<string, unknown>[] = [];
  private waiters: Waiter[] = [];
  private closed: XipError | undefined;
  /** How long a reply may take, milliseconds. */
  private readonly replyTimeoutMs: number;

  private constructor(sock: Socket, replyTimeoutMs: number) {
    this.sock = sock;
    this.replyTimeoutMs = replyTimeoutMs;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('close', () => this.fail(new XipError('QMP: QEMU closed the connection')));
    sock.on('error', (e) => this.fail(new XipError(`QMP: ${e.message}`)));
  }

  /**
   * Connect to QEMU's QMP socket (retrying while QEMU starts, up to
   * timeoutMs) and leave capabilities negotiation; every reply after that
   * may take up to timeoutMs too. Something there that does not speak QMP
   * is an error at once, not retried.
   */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    let last: Error | undefined;
    let sock: Socket | undefined;
    while (sock === undefined && Date.now() < deadline) {
      try {
        sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch (e) {
        last = e as Error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (sock === undefined) {
      throw new XipError(`QMP: could not connect to QEMU at ${path} within ${formatMs(timeoutMs)}: ${last?.message ?? 'no answer'}`);
    }
    const c = new QmpClient(sock, timeoutMs);
    try {
      await c.next('the greeting');
      await c.execute('qmp_capabilities');
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private onData(d: string): void {
    if (this.closed) return;
    try {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line === '') continue;
        const msg = parseMessage(line);
        if ('event' in msg) continue; // asynchronous events are not replies
        const w = this.waiters.shift();
        if (w) w.resolve(msg);
        else this.replies.push(msg);
      }
      if (this.buf.length > MAX_LINE) throw new XipError(`QMP: a line of more than ${MAX_LINE} bytes: ${shown(this.buf)}`);
    } catch (e) {
      this.fail(e instanceof XipError ? e : new XipError(`QMP: cannot handle what QEMU sent (${String(e)})`, { cause: e }));
    }
  }

  /** End the connection with this error: every pending and later command rejects with it. */
  private fail(e: XipError): void {
    if (this.closed) return;
    this.closed = e;
    this.replies = [];
    for (const w of this.waiters.splice(0)) w.reject(e);
    this.sock.destroy();
  }

  private next(what: string): Promise<Record<string, unknown>> {
    const r = this.replies.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const ms = this.replyTimeoutMs;
      const timer = setTimeout(() => this.fail(new XipError(`QMP: no reply to ${what} within ${formatMs(ms)}`)), ms);
      this.waiters.push({
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) throw this.closed;
    this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const r = await this.next(`'${command}'`);
    if ('error' in r) throw new XipError(`QMP: ${command} failed: ${JSON.stringify(r.error)}`);
    return r.return;
  }

  /** Guest instructions executed since reset (QEMU in record/replay mode). */
  async icount(): Promise<number> {
    const r = (await this.execute('query-replay')) as { mode?: string; icount?: number };
    if (typeof r?.icount !== 'number') {
      throw new XipError(`QMP: query-replay gave no instruction count (mode ${r?.mode ?? '?'}): QEMU must run with -icount shift=0,rr=record`);
    }
    return r.icount;
  }

  /** Run a human monitor command (e.g. "info registers") and return its text. */
  async hmp(line: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': line }));
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** One QMP line as an object; an XipError that shows the line when it is not a JSON object. */
export function parseMessage(line: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new XipError(`QMP: not JSON: received ${shown(line)}; is the socket QEMU's -qmp one?`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new XipError(`QMP: not a JSON object: received ${shown(line)}; is the socket QEMU's -qmp one?`);
  }
  return v as Record<string, unknown>;
}

/** The program counter from `info registers` output of a MIPS guest. */
export function parsePc(infoRegisters: string): number | undefined {
  const m = /\bpc=0x([0-9a-f]+)/i.exec(infoRegisters);
  return m?.[1] ? parseInt(m[1], 16) >>> 0 : undefined;
}

/**
 * Sample the guest's program counter through QMP until QEMU goes away (or
 * `max` samples). Used to show where the kernel really executes from.
 */
export async function samplePcs(socketPath: string, max = 100_000): Promise<number[]> {
  const q = await QmpClient.connect(socketPath);
  const pcs: number[] = [];
  try {
    while (!q.isClosed && pcs.length < max) {
      let text: string;
      try {
        text = await q.hmp('info registers');
      } catch {
        break; // QEMU quit (power-off) while we asked
      }
      const pc = parsePc(text);
      if (pc !== undefined) pcs.push(pc);
    }
  } finally {
    q.close();
  }
  return pcs;
}
