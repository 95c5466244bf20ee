import { createConnection, type Socket } from 'node:net';
import { XipError } from '../errors.ts';

/**
 * A minimal QMP (QEMU Machine Protocol) client over a Unix socket: enough to
 * run human-monitor commands while a guest boots. One command at a time.
 */
export class Qmp {
  private buf = '';
  private waiters: ((msg: Record<string, unknown>) => void)[] = [];
  private closed = false;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) continue; // asynchronous events are not answers
        this.waiters.shift()?.(msg);
      }
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w({ error: { desc: 'QMP connection closed' } });
    });
    sock.on('error', () => undefined);
  }

  /** Connect (retrying until QEMU has created the socket) and negotiate capabilities. */
  static async connect(path: string, timeoutMs = 10_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await q.next(); // greeting
        await q.execute('qmp_capabilities');
        return q;
      } catch (err) {
        if (Date.now() > deadline) throw new XipError(`QMP socket ${path}: could not connect (${String(err)})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private next(): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.resolve({ error: { desc: 'QMP connection closed' } });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const answer = this.next();
    this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const msg = await answer;
    if ('error' in msg) throw new XipError(`QMP ${command}: ${JSON.stringify(msg.error)}`);
    return msg.return;
  }

  /** Run a human monitor command (e.g. "info registers") and return its text. */
  async hmp(line: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': line }));
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
  const q = await Qmp.connect(socketPath);
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
