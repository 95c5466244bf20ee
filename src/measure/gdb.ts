import { shown, XipError } from '../errors.ts';
import { connectRetrying, ReplyChannel, type Endpoint, type Framing } from '../qemu/channel.ts';
import { hex } from '../text.ts';

/**
 * A very small GDB remote-serial-protocol client: enough to stop QEMU at
 * breakpoints (Z0), continue, read a register and write a word of memory.
 * Packets are `$payload#checksum`; every packet is acknowledged with '+'.
 * QEMU's gdbstub replies to `c` only when the guest stops (a `T05...` or
 * `S05` stop reply), which may be many seconds later.
 */

/** Frame a payload as a packet: `$payload#xx` (xx = payload bytes summed mod 256, two hex digits). */
export function framePacket(payload: string): string {
  let sum = 0;
  for (const b of Buffer.from(payload, 'latin1')) sum = (sum + b) & 0xff;
  return `$${payload}#${sum.toString(16).padStart(2, '0')}`;
}

/** The longest packet taken before the stream counts as garbage (QEMU's are a few KiB at most). */
export const MAX_PACKET = 1024 * 1024;

/**
 * Split a received stream into packets. Returns the payloads found and the
 * unconsumed rest. Acks ('+', '-') between packets are dropped; anything
 * else between packets, a packet with a wrong checksum, or one longer than
 * MAX_PACKET throws an XipError that shows what was received.
 */
export function parsePackets(buf: string): { packets: string[]; rest: string } {
  const packets: string[] = [];
  let i = 0;
  for (;;) {
    while (i < buf.length && (buf[i] === '+' || buf[i] === '-')) i++;
    if (i >= buf.length) return { packets, rest: '' };
    if (buf[i] !== '$') {
      throw new XipError(`gdbstub: not the gdb remote protocol: received ${shown(buf.slice(i))}; is the socket QEMU's -gdb one?`);
    }
    const hash = buf.indexOf('#', i);
    if (hash < 0 || hash + 2 >= buf.length) {
      if (buf.length - i > MAX_PACKET) throw new XipError(`gdbstub: a packet of more than ${MAX_PACKET} bytes without its end: ${shown(buf.slice(i))}`);
      return { packets, rest: buf.slice(i) };
    }
    const payload = buf.slice(i + 1, hash);
    if (framePacket(payload).slice(-2) !== buf.slice(hash + 1, hash + 3).toLowerCase()) {
      throw new XipError(`gdbstub: packet with a bad checksum: received ${shown(buf.slice(i, hash + 3))}, its checksum is ${framePacket(payload).slice(-2)}`);
    }
    packets.push(payload);
    i = hash + 3;
  }
}

/** A 32-bit word as the target sends it in a register/memory reply (target byte order, hex). */
export function decodeWord(hex: string, endian: 'little' | 'big'): number {
  if (!/^[0-9a-fA-F]{8}/.test(hex)) throw new XipError(`gdbstub: not a 32-bit register value: '${hex.slice(0, 20)}'`);
  const b = Buffer.from(hex.slice(0, 8), 'hex');
  return endian === 'little' ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

export function encodeWord(v: number, endian: 'little' | 'big'): string {
  const b = Buffer.alloc(4);
  if (endian === 'little') b.writeUInt32LE(v >>> 0, 0);
  else b.writeUInt32BE(v >>> 0, 0);
  return b.toString('hex');
}

/** A stop reply: S/T (signal, e.g. T05 at a breakpoint) or W/X (the target ended). */
export function isStopReply(p: string): boolean {
  return /^[STWX][0-9a-fA-F]{2}/.test(p);
}

/** The remote protocol's framing: packets, each acknowledged; console output ('O' packets) is no reply. */
const GDB_FRAMING: Framing<string> = {
  split(buf) {
    try {
      const { packets, rest } = parsePackets(buf);
      return { messages: packets, rest };
    } catch (e) {
      if (!(e instanceof XipError)) throw e;
      return { messages: [], rest: buf, error: e };
    }
  },
  isReply(p, write) {
    write('+');
    return !(p.startsWith('O') && p !== 'OK' && /^O[0-9a-fA-F]+$/.test(p));
  },
};

/**
 * The gdbstub's requests and replies go through a ReplyChannel
 * (src/qemu/channel.ts): garbage, a closed connection or a reply that does
 * not come in time fails the client, and the pending request and every
 * later one reject with that XipError.
 */
export class GdbClient {
  private constructor(private readonly ch: ReplyChannel<string>) {}

  /** Connect to a gdbstub listening on a unix socket path or host:port. */
  static async connect(where: Endpoint, timeoutMs = 10_000): Promise<GdbClient> {
    return new GdbClient(new ReplyChannel(await connectRetrying(where, timeoutMs, 'gdbstub'), 'gdbstub', 'latin1', GDB_FRAMING));
  }

  /** Send a command and return its reply payload (timeoutMs 0: wait as long as it takes). */
  async request(payload: string, timeoutMs = 10_000): Promise<string> {
    this.ch.send(framePacket(payload));
    return this.ch.next(`'${payload.slice(0, 20)}'`, timeoutMs);
  }

  private async ok(payload: string): Promise<void> {
    const r = await this.request(payload);
    if (r !== 'OK') throw new XipError(`gdbstub: '${payload}' answered '${r || '(empty: not supported)'}'`);
  }

  /** The stop reason (sent first, right after connecting to a halted QEMU). */
  async haltReason(): Promise<string> {
    return this.request('?');
  }

  async setBreakpoint(addr: number): Promise<void> {
    await this.ok(`Z0,${(addr >>> 0).toString(16)},4`);
  }

  async clearBreakpoint(addr: number): Promise<void> {
    await this.ok(`z0,${(addr >>> 0).toString(16)},4`);
  }

  /** Continue and wait (up to timeoutMs; 0: forever) for the guest to stop. Returns the stop reply. */
  async cont(timeoutMs: number): Promise<string> {
    const r = await this.request('c', timeoutMs);
    if (!isStopReply(r)) throw new XipError(`gdbstub: unexpected reply to continue: '${r.slice(0, 60)}'`);
    if (r.startsWith('W') || r.startsWith('X')) throw new XipError(`gdbstub: the guest ended before the breakpoint (${r})`);
    return r;
  }

  /**
   * Read register n (GDB's MIPS numbering: 0-31 GPRs, 37 PC). Through 'g'
   * (all registers): QEMU answers 'p' only to clients that fetched its
   * target description first.
   */
  async readRegister(n: number, endian: 'little' | 'big'): Promise<number> {
    const r = await this.request('g');
    if (r.startsWith('E') || r.length < (n + 1) * 8) throw new XipError(`gdbstub: reading register ${n} failed (${r.slice(0, 20) || 'not supported'})`);
    return decodeWord(r.slice(n * 8, n * 8 + 8), endian);
  }

  /** Write register n through 'G' (all registers), for the same reason as readRegister. */
  async writeRegister(n: number, value: number, endian: 'little' | 'big'): Promise<void> {
    const r = await this.request('g');
    if (r.startsWith('E') || r.length < (n + 1) * 8) throw new XipError(`gdbstub: reading the registers failed (${r.slice(0, 20) || 'not supported'})`);
    await this.ok(`G${r.slice(0, n * 8)}${encodeWord(value, endian)}${r.slice(n * 8 + 8)}`);
  }

  async writeWord(addr: number, value: number, endian: 'little' | 'big'): Promise<void> {
    await this.ok(`M${(addr >>> 0).toString(16)},4:${encodeWord(value, endian)}`);
  }

  async readWord(addr: number, endian: 'little' | 'big'): Promise<number> {
    const r = await this.request(`m${(addr >>> 0).toString(16)},4`);
    if (r.startsWith('E') || r === '') throw new XipError(`gdbstub: reading memory at ${hex(addr)} failed (${r})`);
    return decodeWord(r, endian);
  }

  close(): void {
    this.ch.close();
  }
}
