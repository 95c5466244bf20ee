import { connect, type Socket } from 'node:net';
import { formatMs, shown, XipError } from '../errors.ts';

/**
 * What the gdbstub client (src/measure/gdb.ts) and the QMP client
 * (src/qemu/qmp.ts) share: connecting to a socket QEMU is still opening,
 * and a request/reply queue over it.
 *
 * Nothing the other end sends can throw out of the socket's handlers (an
 * exception there would bypass every caller's cleanup): garbage, a closed
 * connection or a reply that does not come in time fails the channel. The
 * pending request and every later one reject with that XipError, and the
 * connection is closed (after a lost reply, requests and replies would no
 * longer pair up).
 */

export type Endpoint = { path: string } | { host: string; port: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connect to `where`, retrying every 50 ms while QEMU starts, up to timeoutMs. `label` names the protocol in the error. */
export async function connectRetrying(where: Endpoint, timeoutMs: number, label: string): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  while (Date.now() < deadline) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = 'path' in where ? connect(where.path) : connect(where.port, where.host);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    } catch (e) {
      last = e as Error;
      await sleep(50);
    }
  }
  const at = 'path' in where ? where.path : `${where.host}:${where.port}`;
  throw new XipError(`${label}: could not connect to QEMU at ${at} within ${formatMs(timeoutMs)}: ${last?.message ?? 'no answer'}`);
}

/** How a protocol cuts the received text into messages. */
export interface Framing<T> {
  /**
   * The whole messages at the start of `buf` and the rest (a message not
   * complete yet). Garbage ends the split: the messages before it, and the
   * XipError that says what came.
   */
  split(buf: string): { messages: T[]; rest: string; error?: XipError };
  /**
   * Called for every message, in order, with a way to answer at once (gdb's
   * acknowledgements): true when it is a reply, false for what is not
   * (QMP events, console output forwarded by the gdbstub).
   */
  isReply(message: T, write: (text: string) => void): boolean;
}

interface Waiter<T> {
  resolve: (message: T) => void;
  reject: (err: XipError) => void;
}

export class ReplyChannel<T> {
  private buf = '';
  private replies: T[] = [];
  private waiters: Waiter<T>[] = [];
  private failed: XipError | undefined;

  constructor(
    private readonly sock: Socket,
    /** Names the protocol in errors: 'gdbstub', 'QMP'. */
    private readonly label: string,
    encoding: BufferEncoding,
    private readonly framing: Framing<T>,
  ) {
    sock.setEncoding(encoding);
    sock.on('data', (d: string) => this.onData(d));
    sock.on('close', () => this.fail(new XipError(`${label}: QEMU closed the connection`)));
    sock.on('error', (e) => this.fail(new XipError(`${label}: ${e.message}`)));
  }

  private onData(d: string): void {
    if (this.failed) return;
    try {
      this.buf += d;
      const { messages, rest, error } = this.framing.split(this.buf);
      this.buf = rest;
      for (const m of messages) {
        if (!this.framing.isReply(m, (text) => this.sock.write(text))) continue;
        const w = this.waiters.shift();
        if (w) w.resolve(m);
        else this.replies.push(m);
      }
      if (error) this.fail(error);
    } catch (e) {
      this.fail(e instanceof XipError ? e : new XipError(`${this.label}: cannot handle what QEMU sent (${String(e)}): ${shown(this.buf)}`, { cause: e }));
    }
  }

  /** End the connection with this error: every pending and later request rejects with it. */
  fail(e: XipError): void {
    if (this.failed) return;
    this.failed = e;
    this.replies = [];
    for (const w of this.waiters.splice(0)) w.reject(e);
    this.sock.destroy();
  }

  /** Send a request (throws the channel's error once it failed). */
  send(text: string): void {
    if (this.failed) throw this.failed;
    this.sock.write(text);
  }

  /** The next reply; the channel fails when none comes within timeoutMs (0: wait forever). `what` names it in that error. */
  next(what: string, timeoutMs: number): Promise<T> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0 ? setTimeout(() => this.fail(new XipError(`${this.label}: no reply to ${what} within ${formatMs(timeoutMs)}`)), timeoutMs) : undefined;
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

  /** Why the channel failed, once it did. */
  get error(): XipError | undefined {
    return this.failed;
  }

  close(): void {
    this.sock.destroy();
  }
}
