import { shown, XipError } from '../errors.ts';
import { connectRetrying, ReplyChannel, type Framing } from './channel.ts';

/** The longest line taken before the stream counts as garbage (replies are a few KiB). */
export const MAX_LINE = 4 * 1024 * 1024;

/** QMP's framing: one JSON object a line; asynchronous events are no replies. */
const QMP_FRAMING: Framing<Record<string, unknown>> = {
  split(buf) {
    const messages: Record<string, unknown>[] = [];
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      try {
        messages.push(parseMessage(line));
      } catch (e) {
        if (!(e instanceof XipError)) throw e;
        return { messages, rest: buf, error: e };
      }
    }
    if (buf.length > MAX_LINE) return { messages, rest: buf, error: new XipError(`QMP: a line of more than ${MAX_LINE} bytes: ${shown(buf)}`) };
    return { messages, rest: buf };
  },
  isReply: (msg) => !('event' in msg),
};

/**
 * A tiny QMP (QEMU Machine Protocol) client: JSON objects, one per line.
 * Used for `query-replay` (guest instructions executed so far, when QEMU runs
 * with `-icount shift=0,rr=record,...`) and human-monitor commands.
 *
 * Commands and replies go through a ReplyChannel (src/qemu/channel.ts):
 * a line that is not a JSON object, a closed connection or a reply that
 * does not come in time fails the client, and the pending command and every
 * later one reject with that XipError.
 */
export class QmpClient {
  private constructor(
    private readonly ch: ReplyChannel<Record<string, unknown>>,
    /** How long a reply may take, milliseconds. */
    private readonly replyTimeoutMs: number,
  ) {}

  /**
   * Connect to QEMU's QMP socket (retrying while QEMU starts, up to
   * timeoutMs) and leave capabilities negotiation; every reply after that
   * may take up to timeoutMs too. Something there that does not speak QMP
   * is an error at once, not retried.
   */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const sock = await connectRetrying({ path }, timeoutMs, 'QMP');
    const c = new QmpClient(new ReplyChannel(sock, 'QMP', 'utf8', QMP_FRAMING), timeoutMs);
    try {
      await c.ch.next('the greeting', timeoutMs);
      await c.execute('qmp_capabilities');
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    this.ch.send(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const r = await this.ch.next(`'${command}'`, this.replyTimeoutMs);
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
    return this.ch.error !== undefined;
  }

  close(): void {
    this.ch.close();
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
 * Read something of the stopped guest, again and again: stop it, read,
 * let it go on (a gap of gapMs between), until QEMU goes away, `max`
 * readings are kept or `stop` is aborted. The guest is never read while
 * its vCPU runs: QEMU 10.0.13 once died of SIGSEGV with 'info registers'
 * asked of a running guest in a tight loop (the power-cut test, Debian 13).
 * Never leaves the guest stopped.
 */
async function sampleStopped<T>(socketPath: string, o: { max: number; stop?: AbortSignal; gapMs: number }, read: (q: QmpClient) => Promise<T | undefined>): Promise<T[]> {
  const q = await QmpClient.connect(socketPath);
  const out: T[] = [];
  let stopped = false;
  try {
    while (!q.isClosed && out.length < o.max && !o.stop?.aborted) {
      try {
        await q.execute('stop');
        stopped = true;
        const v = await read(q);
        await q.execute('cont');
        stopped = false;
        if (v !== undefined) out.push(v);
      } catch {
        break; // QEMU quit (power-off) while we asked, or did not answer
      }
      if (o.gapMs > 0) await new Promise((r) => setTimeout(r, o.gapMs));
    }
  } finally {
    q.close();
    // A channel that failed cannot send cont, a new connection can.
    if (stopped) await resume(socketPath);
  }
  return out;
}

/**
 * Sample the guest's program counter through QMP until QEMU goes away, `max`
 * samples or `stop` is aborted (before the guest powers off: see
 * test/fixtures/xip-suite.ts). Used to show where the kernel really executes from.
 */
export function samplePcs(socketPath: string, o: { max?: number; stop?: AbortSignal } = {}): Promise<number[]> {
  return sampleStopped(socketPath, { max: o.max ?? 100_000, stop: o.stop, gapMs: 0 }, async (q) => parsePc(await q.hmp('info registers')));
}

/** One sample of the guest stopped in user mode: its PC and the physical address QEMU's MMU translates it to. */
export interface UserPcSample {
  pc: number;
  /** Physical address of the PC, or undefined when QEMU could not translate it (not in the TLB). */
  phys?: number;
}

/** The physical address in `gva2gpa` output ("gpa: 0x1e31a4c0"), or undefined ("Unmapped"). */
export function parseGpa(text: string): number | undefined {
  const m = /\bgpa:\s*0x([0-9a-f]+)/i.exec(text);
  return m?.[1] ? parseInt(m[1], 16) >>> 0 : undefined;
}

/**
 * Sample where user code executes physically: stop the guest, read its
 * PC, and when it is a user address (below `userTop`) translate it through
 * the guest's own MMU state with `gva2gpa`, then let it go on. Until QEMU
 * goes away, `stop` is aborted or `max` user samples are taken. The proof
 * that programs run in place from flash, seen from outside the guest.
 */
export function sampleUserPcs(socketPath: string, o: { userTop: number; max?: number; stop?: AbortSignal; gapMs?: number }): Promise<UserPcSample[]> {
  return sampleStopped(socketPath, { max: o.max ?? 10_000, stop: o.stop, gapMs: o.gapMs ?? 2 }, async (q) => {
    const pc = parsePc(await q.hmp('info registers'));
    if (pc === undefined || pc >= o.userTop) return undefined;
    return { pc, phys: parseGpa(await q.hmp(`gva2gpa 0x${pc.toString(16)}`)) };
  });
}

/** Send cont on a fresh QMP connection; nothing if QEMU is gone. */
async function resume(socketPath: string): Promise<void> {
  let q: QmpClient | undefined;
  try {
    q = await QmpClient.connect(socketPath, 2000);
    await q.execute('cont');
  } catch {
    // QEMU has ended: nothing to resume.
  } finally {
    q?.close();
  }
}
