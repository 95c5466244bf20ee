import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BoardData, qemuOf } from '../boards/board.ts';
import type { Board } from '../boards/index.ts';
import type { Variant } from '../context.ts';
import { readElf } from '../elf/elf32.ts';
import { badInput, XipError } from '../errors.ts';
import { debug } from '../log.ts';
import { run } from '../proc.ts';
import { qemuCommand } from '../qemu/firmware.ts';
import { qemuArgs } from '../qemu/runner.ts';
import { GdbClient } from './gdb.ts';
import { QmpClient } from '../qemu/qmp.ts';
import { hex } from '../text.ts';

/**
 * Boot cost in guest instructions, deterministic.
 *
 * QEMU runs with `-icount shift=0,sleep=off,rr=record`: every guest
 * instruction is counted, and QMP `query-replay` returns the count. The
 * gdbstub (`-S`, a unix socket) stops the guest at breakpoints taken from
 * the kernel's symbol table: `start_kernel`, then `run_init_process`
 * (kernel_init is about to exec /init) and the entry point of /init (PID 1's
 * first user instruction).
 *
 * One part of every malta boot is not deterministic: estimate_frequencies()
 * busy-waits for two edges of the MC146818 RTC's update flag. With the RTC
 * on the host clock the loop count varies from run to run, and the CP0
 * Count rate it measures (mips_hpt_frequency) then sets the timer tick and
 * the delay-loop calibration for the rest of the boot; the wall-clock time
 * it reads also seeds the kernel's entropy. With the RTC on the virtual
 * clock (`-rtc clock=vm`) the wait lasts 1-2 virtual seconds (>10^9 slow
 * I/O-bound instructions). So, to PID 1, the RTC runs on the virtual clock
 * from a fixed date, and the debugger skips estimate_frequencies(): at its
 * first instruction mips_hpt_frequency gets the Count rate QEMU really uses
 * (what the function measures when the RTC follows the virtual clock) and
 * the PC is set to the return address. The count to PID 1 is then the same
 * in every run, and excludes that calibration wait (the same for XIP and
 * stock). Everything before start_kernel runs before the RTC is touched:
 * that count needs no help.
 */

/** Fixed RTC start for the PID 1 count: the wall-clock time the guest reads is part of its state. */
export const RTC_ARGS = ['-rtc', 'base=2024-01-01T00:00:00,clock=vm'];

export interface BootCostOptions {
  board: Board;
  variant: Variant;
  /** Flash image (-bios) for xip. */
  bios?: string;
  /** Kernel (-kernel) for stock: vmlinux or the compressed vmlinuz. */
  kernel?: string;
  /** ELF whose symbols give the breakpoints (the stock vmlinux for vmlinuz: same addresses after decompression). */
  symbols: string;
  /** Entry point of /init, for the PID 1 breakpoint (optional). */
  initEntry?: number;
  memMiB: number;
  log: string;
  timeoutMs?: number;
  /** Stop after start_kernel (do not follow the boot to PID 1). */
  startKernelOnly?: boolean;
}

export interface BootCost {
  /** Instructions from reset to the first instruction of start_kernel. */
  toStartKernel: number;
  /** Reset to run_init_process (kernel_init about to exec /init), estimate_frequencies() skipped. */
  toRunInit?: number;
  /** Reset to PID 1's first user instruction, estimate_frequencies() skipped. */
  toPid1?: number;
}

interface Addrs {
  startKernel: number;
  estimate?: number;
  runInit?: number;
  hptFrequency?: number;
}

export function bootCostSymbols(path: string): Addrs {
  const elf = readElf(path);
  const need = (n: string) => {
    const s = elf.findSymbol(n);
    if (!s || s.shndx === 0) throw badInput(`${path}: symbol ${n} not found: give a Linux vmlinux with its symbol table`);
    return s.value >>> 0;
  };
  const opt = (n: string) => {
    const s = elf.findSymbol(n);
    return s && s.shndx !== 0 ? s.value >>> 0 : undefined;
  };
  return {
    startKernel: need('start_kernel'),
    estimate: opt('estimate_frequencies'),
    runInit: opt('run_init_process'),
    hptFrequency: opt('mips_hpt_frequency'),
  };
}

/** Entry point of an ELF program (/init), or undefined when the file is not an ELF. */
export function elfEntry(path: string): number | undefined {
  try {
    return readElf(path).entry >>> 0;
  } catch {
    return undefined;
  }
}

const PC = 37;
const RA = 31;

export async function measureBootCost(o: BootCostOptions): Promise<BootCost> {
  const addrs = bootCostSymbols(o.symbols);
  const endian = o.board.endian;
  const dir = mkdtempSync(join(tmpdir(), 'xip-measure-'));
  const gdbSock = join(dir, 'gdb.sock');
  const qmpSock = join(dir, 'qmp.sock');
  const extra = [
    '-icount',
    `shift=0,sleep=off,rr=record,rrfile=${join(dir, 'replay.bin')}`,
    '-S',
    '-chardev',
    `socket,id=xipgdb,path=${gdbSock},server=on,wait=off`,
    '-gdb',
    'chardev:xipgdb',
    '-qmp',
    `unix:${qmpSock},server=on,wait=off`,
    ...(o.startKernelOnly ? [] : RTC_ARGS),
  ];
  const args = serialToFile(qemuArgs({
    board: o.board,
    variant: o.variant,
    bios: o.bios,
    kernel: o.kernel,
    memMiB: o.memMiB,
    log: o.log,
    extraArgs: extra,
  }), join(dir, 'console.log'));
  debug(`qemu: ${qemuOf(o.board).binary} ${args.join(' ')}`);
  const stopper = new AbortController();
  const timeoutMs = o.timeoutMs ?? 120_000;
  rmSync(o.log, { force: true }); // proc.run appends: one run per log
  const q = qemuCommand(qemuOf(o.board).binary, args);
  const qemu = run(q.cmd, q.args, {
    log: o.log,
    timeoutMs,
    allowFailure: true,
    abort: stopper.signal,
    what: `QEMU instruction count (${o.variant})`,
  });
  let qemuEnded = false;
  const ended = qemu.then((r) => {
    qemuEnded = true;
    return r;
  });
  const counts: Record<string, number> = {};
  let gdb: GdbClient | undefined;
  let qmp: QmpClient | undefined;
  try {
    gdb = await GdbClient.connect({ path: gdbSock });
    qmp = await QmpClient.connect(qmpSock);
    await gdb.haltReason();
    const bps = new Map<number, string>();
    const add = async (addr: number | undefined, name: string) => {
      if (addr === undefined || bps.has(addr)) return;
      await gdb!.setBreakpoint(addr);
      bps.set(addr, name);
    };
    await add(addrs.startKernel, 'start_kernel');
    if (!o.startKernelOnly) {
      if (addrs.estimate === undefined || addrs.hptFrequency === undefined) {
        throw badInput(`${o.symbols}: estimate_frequencies / mips_hpt_frequency not found: the PID 1 count needs them (use startKernelOnly)`);
      }
      await add(addrs.estimate, 'estimate_frequencies');
      await add(addrs.runInit, 'run_init_process');
      await add(o.initEntry, 'init');
    }
    while (bps.size > 0) {
      const stop = await gdb.cont(timeoutMs);
      const pc = await gdb.readRegister(PC, endian);
      const n = await qmp.icount();
      const name = bps.get(pc);
      debug(`measure: stop ${stop.slice(0, 3)} at ${hex(pc)} (${name ?? '?'}) after ${n} instructions`);
      if (name === undefined) throw new XipError(`gdbstub: the guest stopped at ${hex(pc)}, not at a breakpoint (${stop})`);
      counts[name] = n;
      await gdb.clearBreakpoint(pc);
      bps.delete(pc);
      if (name === 'estimate_frequencies') {
        // Skip it: the rate QEMU uses, then return at once.
        await gdb.writeWord(addrs.hptFrequency!, countRate(o.board), endian);
        await gdb.writeRegister(PC, await gdb.readRegister(RA, endian), endian);
      }
      if (name === 'start_kernel' && o.startKernelOnly) break;
    }
    const sk = counts.start_kernel;
    if (sk === undefined) throw new XipError('the guest never reached start_kernel');
    const out: BootCost = { toStartKernel: sk };
    if (!o.startKernelOnly && counts.estimate_frequencies === undefined) {
      throw new XipError('the guest reached PID 1 without calling estimate_frequencies(): the count is not comparable');
    }
    if (counts.run_init_process !== undefined) out.toRunInit = counts.run_init_process;
    if (counts.init !== undefined) out.toPid1 = counts.init;
    return out;
  } catch (e) {
    // /init's entry never reached (PID 1 is not that program, e.g. a script): keep what was counted.
    const initOnly = o.initEntry !== undefined && counts.run_init_process !== undefined && counts.init === undefined;
    // The gdb connection may close a moment before QEMU's exit is seen.
    if (initOnly) await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
    if (initOnly && counts.start_kernel !== undefined && qemuEnded) {
      return { toStartKernel: counts.start_kernel, toRunInit: counts.run_init_process };
    }
    if (qemuEnded) {
      const r = await ended;
      throw new XipError(`QEMU ended before the measurement finished (exit ${r.code}); log ${o.log}`, {
        details: r.tail.slice(-10),
        cause: e,
      });
    }
    throw e;
  } finally {
    gdb?.close();
    qmp?.close();
    stopper.abort();
    await ended;
    // The console (written to a file, see serialToFile) goes into the log after QEMU's own lines.
    const con = join(dir, 'console.log');
    if (existsSync(con)) appendFileSync(o.log, readFileSync(con));
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The console goes to a file, not to a pipe: when a pipe is momentarily
 * full QEMU's UART holds back its "transmitter empty" bit and the guest
 * polls it, so the instruction count would depend on how fast the host
 * reads the pipe.
 */
export function serialToFile(args: string[], file: string): string[] {
  const out = [...args];
  const i = out.findIndex((a, k) => a === '-serial' && out[k + 1] === 'stdio');
  if (i < 0) throw new XipError(`boot cost: the QEMU arguments have no '-serial stdio' to redirect: ${args.join(' ')}`);
  out[i + 1] = `file:${file}`;
  return out;
}

/** The CP0 Count rate the guest should see: QEMU's model of the board's machine, not the host clock. */
export function countRate(board: Pick<BoardData, 'name' | 'qemu'>): number {
  return qemuOf(board).countHz;
}
