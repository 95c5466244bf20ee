import { connect, type Socket } from 'node:net';
import { XipError } from '../errors.ts';

/**
 * A tiny QMP (QEMU Machine Protocol) client: JSON objects, one per line.
 * Used for `query-replay` (guest instructions executed so far, when QEMU runs
 * with `-icount shift=0,rr=record,...`) and human-monitor commands.
 */
export class QmpClient {
  private sock: Socket;
  private buf = '';
  private replies: unknown[] = [];
  private waiters: ((v: unknown) => void)[] = [];
  private closed: Error | undefined;

  private constructor(sock: Socket) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line === '') continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) continue; // asynchronous events are not replies
        const w = this.waiters.shift();
        if (w) w(msg);
        else this.replies.push(msg);
      }
    });
    const fail = (e: Error) => {
      this.closed ??= e;
      for (const w of this.waiters.splice(0)) w(e);
    };
    sock.on('close', () => fail(new XipError('QMP: QEMU closed the connection')));
    sock.on('error', (e) => fail(new XipError(`QMP: ${e.message}`)));
  }

  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    let last: Error | undefined;
    while (Date.now() < deadline) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const c = new QmpClient(sock);
        await c.next(); // greeting
        await c.execute('qmp_capabilities');
        return c;
      } catch (e) {
        last = e as Error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new XipError(`QMP: could not connect to QEMU at ${path}: ${last?.message ?? 'no answer'}`);
  }

  private next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const r = this.replies.shift();
    if (r !== undefined) return Promise.resolve(r as Record<string, unknown>);
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new XipError('QMP: no reply within 10 s')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(timer);
        if (v instanceof Error) reject(v);
        else resolve(v as Record<string, unknown>);
      });
    });
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) throw this.closed;
    this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const r = await this.next();
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
