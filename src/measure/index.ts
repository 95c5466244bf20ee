import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type BoardData, qemuOf } from '../boards/board.ts';
import { makeContext, type BuildContext } from '../context.ts';
import { badInput, EXIT, XipError } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { vmlinuzPath } from '../kernel/kbuild.ts';
import { imageReportPath, readImageReport } from '../image/stage.ts';
import { info } from '../log.ts';
import type { BootResult } from '../qemu/runner.ts';
import { bootBuilt } from '../pipeline.ts';
import { getProfile } from '../userspace/profiles.ts';
import { countRate, elfEntry, measureBootCost, RTC_ARGS, type BootCost } from './bootcost.ts';
import { measureBuildTimes } from './buildtime.ts';
import { flashUseOf } from './flash.ts';
import { machineInfo } from './machine.ts';
import {
  accountRam,
  hashTablesFromLog,
  kernelSizes,
  memoryFromLog,
  oomLineFromLog,
  parseMemoryFields,
  reservedPerPage,
  type MemoryFields,
} from './memory.ts';
import { findMinRam, type Attempt } from './minram.ts';
import { checkResults, RESULTS_SCHEMA, type MinRamOf, type RamAtSize, type Results } from './schema.ts';
import { thousands } from '../text.ts';

/**
 * `xip measure`: what XIP buys, against the stock kernel of the same config,
 * in one run. RAM (the Memory: line at several sizes), the smallest RAM that
 * still boots, boot cost in guest instructions, flash use, and (optionally)
 * build times. Every number lands in one Results object (--json, and the
 * results file bench/results-<config>.json the README section is made from),
 * whose type is inferred from the results file's schema (schema.ts).
 */
export { RESULTS_SCHEMA, type MinRamOf, type RamAtSize, type Results } from './schema.ts';
export const DEFAULT_SIZES_MIB = [8, 16, 256];
/** The target: XIP reaches PID 1 with this much less RAM than stock. */
export const MIN_RAM_TARGET_KIB = 2048;

export interface Target {
  name: string;
  met: boolean;
  detail: string;
}

const kib = (n: number) => `${n} KiB`;

/** The issue's targets, judged from the numbers. */
export function judgeTargets(r: Results): Target[] {
  const out: Target[] = [];
  if (r.ram) {
    for (const mem of [256, 8]) {
      const s = r.ram.sizes.find((x) => x.memMiB === mem);
      if (!s) continue;
      const gain = s.diff.availableKiB;
      out.push({
        name: `RAM available at ${mem} MiB: XIP - stock >= text + rodata + init text (${kib(r.ram.requiredGainKiB)})`,
        met: gain >= r.ram.requiredGainKiB,
        detail: `${gain >= 0 ? '+' : ''}${gain} KiB (${gain - r.ram.requiredGainKiB >= 0 ? '+' : ''}${gain - r.ram.requiredGainKiB} KiB against the target)`,
      });
    }
  }
  if (r.minRam) {
    const saved = r.minRam.savedKiB;
    out.push({
      name: `minimum RAM: XIP needs >= ${kib(MIN_RAM_TARGET_KIB)} less than stock`,
      met: saved >= MIN_RAM_TARGET_KIB,
      detail: `${kib(r.minRam.xip.minKiB)} vs ${kib(r.minRam.stock.minKiB)}: ${saved} KiB less (${saved - MIN_RAM_TARGET_KIB >= 0 ? '+' : ''}${saved - MIN_RAM_TARGET_KIB} KiB against the target)`,
    });
  }
  if (r.bootCost) {
    const x = r.bootCost.xip[0];
    const z = r.bootCost.vmlinuz[0];
    // PID 1's first instruction when /init is an ELF we know; else the exec of /init (run_init_process).
    const pid1 = x?.toPid1 !== undefined && z?.toPid1 !== undefined;
    const xp = pid1 ? x!.toPid1 : x?.toRunInit;
    const zp = pid1 ? z!.toPid1 : z?.toRunInit;
    if (xp !== undefined && zp !== undefined) {
      out.push({
        name: `boot to PID 1${pid1 ? '' : ' (to the exec of /init: run_init_process)'}: XIP from flash takes fewer guest instructions than the stock compressed kernel`,
        met: xp < zp,
        detail: `${fmtInt(xp)} vs ${fmtInt(zp)} (${fmtInt(zp - xp)} fewer, ${pct(xp, zp)})`,
      });
    }
    if (x && z) {
      out.push({
        name: 'reset to start_kernel: XIP from flash takes fewer guest instructions than the stock compressed kernel',
        met: x.toStartKernel < z.toStartKernel,
        detail: `${fmtInt(x.toStartKernel)} vs ${fmtInt(z.toStartKernel)} (${fmtInt(z.toStartKernel - x.toStartKernel)} fewer)`,
      });
    }
  }
  return out;
}

/** Whole numbers in the tables: 2,725,980. */
export const fmtInt = thousands;
function pct(a: number, b: number): string {
  return `${(((b - a) / b) * 100).toFixed(1)}% less`;
}

export interface MeasureOptions {
  board?: string;
  config?: string;
  toolchain?: string;
  userspace?: string;
  buildDir?: string;
  sizes?: number[];
  minRam?: boolean;
  bootCost?: boolean;
  buildTime?: boolean;
  /** Runs of each boot-cost measurement (default 2: the numbers must agree). */
  runs?: number;
  /** Boot timeout for the min-RAM search (ms). */
  minRamTimeoutMs?: number;
}

/** Directory of the measurement logs: build/<board>/<config>/measure/. */
export function measureDir(ctx: BuildContext): string {
  return join(ctx.variantDir, '..', 'measure');
}

function subtract(a: MemoryFields, b: MemoryFields): MemoryFields {
  const out = {} as MemoryFields;
  for (const k of Object.keys(a) as (keyof MemoryFields)[]) out[k] = a[k] - b[k];
  return out;
}

/**
 * Boot one variant at a RAM size given in KiB (QEMU takes -m 7680K), through
 * the pipeline's boot, which also brings the profile's host side (the
 * router's NIC, and its power-off request once it is up).
 */
export async function bootAtKiB(ctx: BuildContext, sizeKiB: number, log: string, timeoutMs?: number): Promise<BootResult> {
  const file = ctx.variant === 'stock' ? ctx.vmlinux : ctx.imagePath;
  if (!existsSync(file)) {
    throw badInput(`${file} not found: build it first (xip --config ${ctx.config} --variant ${ctx.variant} build${ctx.variant === 'xip' ? ' && xip image' : ''})`);
  }
  return bootBuilt(ctx, { memMiB: Math.ceil(sizeKiB / 1024), memKiB: sizeKiB, log, timeoutMs });
}

/**
 * The Memory: line of a boot that had to succeed. A boot that fails (or
 * prints no complete Memory: line) is a failed measurement, exit code 1:
 * the kernel and image were there and usable, so it is not bad input.
 */
export function memoryOfBoot(r: Pick<BootResult, 'ok' | 'failure' | 'memoryLine'>, what: string, log: string): MemoryFields {
  if (!r.ok) {
    throw new XipError(`${what} did not boot (${r.failure?.kind ?? 'failed'}: ${r.failure?.line ?? ''}); log ${log}`, { exitCode: EXIT.failed });
  }
  const mem = parseMemoryFields(r.memoryLine ?? '');
  if (!mem) throw new XipError(`${what}: no complete Memory: line in ${log}`, { exitCode: EXIT.failed });
  return mem;
}

/** The Memory: line of a boot that must succeed. */
async function memoryAt(ctx: BuildContext, memMiB: number, dir: string): Promise<{ mem: MemoryFields; log: string }> {
  const log = join(dir, `ram-${ctx.variant}-${memMiB}M.log`);
  const r = await bootAtKiB(ctx, memMiB * 1024, log);
  const mem = memoryOfBoot(r, `${ctx.variant} at ${memMiB} MiB`, log);
  return { mem, log: readFileSync(log, 'utf8') };
}

export function contexts(o: MeasureOptions): { xip: BuildContext; stock: BuildContext } {
  const base = { board: o.board, config: o.config, toolchain: o.toolchain, userspace: o.userspace, buildDir: o.buildDir };
  return { xip: makeContext({ ...base, variant: 'xip' }), stock: makeContext({ ...base, variant: 'stock' }) };
}

/**
 * Copy what a measurement reads (vmlinux, vmlinuz, flash image, its report,
 * /init, build-info.json) into measure/snapshot/<variant>/ and return
 * contexts pointing there: a build started meanwhile (another make, a test)
 * cannot change the kernel halfway through, and every number comes from the
 * same build.
 */
export function snapshot(ctx: BuildContext, dir: string): BuildContext {
  const files: [string, string, boolean][] = [
    [ctx.vmlinux, 'kbuild/vmlinux', true],
    [ctx.dotConfig, 'kbuild/.config', true],
    [join(ctx.variantDir, 'build-info.json'), 'build-info.json', false],
    [join(ctx.variantDir, 'userspace', 'init'), 'userspace/init', false],
  ];
  if (ctx.variant === 'stock') files.push([vmlinuzPath(ctx), 'kbuild/vmlinuz', true]);
  else files.push([ctx.imagePath, 'xip-bios.bin', true], [imageReportPath(ctx), 'image-report.json', true]);
  const how = ctx.variant === 'stock' ? 'build' : 'build && xip image';
  const snap = join(dir, 'snapshot', basename(ctx.variantDir));
  rmSync(snap, { recursive: true, force: true });
  for (const [from, to, needed] of files) {
    if (!existsSync(from)) {
      if (needed) throw badInput(`${from} not found: build it first (xip --config ${ctx.config} --variant ${ctx.variant} ${how})`);
      continue;
    }
    mkdirSync(dirname(join(snap, to)), { recursive: true });
    copyFileSync(from, join(snap, to));
  }
  return {
    ...ctx,
    variantDir: snap,
    kbuildDir: join(snap, 'kbuild'),
    vmlinux: join(snap, 'kbuild', 'vmlinux'),
    dotConfig: join(snap, 'kbuild', '.config'),
    imagePath: join(snap, 'xip-bios.bin'),
    bootLog: join(snap, 'boot.log'),
  };
}

export async function measure(o: MeasureOptions): Promise<Results> {
  const built = contexts(o);
  const dir = measureDir(built.xip);
  const xip = snapshot(built.xip, dir);
  const stock = snapshot(built.stock, dir);
  const rep = readImageReport(xip);
  if (rep && statSync(xip.imagePath).size !== rep.size) {
    throw badInput(`${built.xip.imagePath} does not match its image report (a build was running?): run xip image again`);
  }
  const sizes = o.sizes ?? DEFAULT_SIZES_MIB;
  const notes: string[] = [];
  const xs = kernelSizes(xip.vmlinux);
  const ss = kernelSizes(stock.vmlinux);
  const r: Results = {
    schema: RESULTS_SCHEMA,
    board: xip.board.name,
    config: xip.config,
    toolchain: xip.toolchain,
    userspace: xip.userspace,
    machine: machineInfo(xip),
    commands: [],
    kernelSizes: { xip: xs, stock: ss },
    notes,
  };

  // 1. RAM at each size.
  if (sizes.length > 0) {
    const rows: RamAtSize[] = [];
    const logs: Record<string, { mem: MemoryFields; log: string }> = {};
    for (const m of sizes) {
      info(`measure: RAM at ${m} MiB (xip, stock)`);
      const a = await memoryAt(xip, m, dir);
      const b = await memoryAt(stock, m, dir);
      logs[`xip${m}`] = a;
      logs[`stock${m}`] = b;
      rows.push({ memMiB: m, xip: a.mem, stock: b.mem, diff: subtract(a.mem, b.mem) });
    }
    const lo = Math.min(...sizes);
    const hi = Math.max(...sizes);
    const per = (v: string) => {
      const a = logs[`${v}${lo}`];
      const b = logs[`${v}${hi}`];
      if (!a || !b || lo === hi) return undefined;
      return reservedPerPage(
        { mem: a.mem, hashTables: hashTablesFromLog(a.log) },
        { mem: b.mem, hashTables: hashTablesFromLog(b.log) },
      );
    };
    r.ram = {
      sizes: rows,
      requiredGainKiB: Math.ceil((xs.text + xs.rodata + xs.initText) / 1024),
      reservedPerPageBytes: { xip: per('xip'), stock: per('stock') },
    };
    const q = qemuOf(xip.board);
    r.commands.push(`${q.binary} -M ${q.machine} -cpu ${q.cpu} -m <N>M ... -bios xip-bios.bin | -kernel vmlinux (N = ${sizes.join(', ')})`);
  }

  // 2. Minimum RAM.
  if (o.minRam !== false) {
    const of = async (ctx: BuildContext): Promise<MinRamOf> => {
      info(`measure: smallest RAM that boots, ${ctx.variant}`);
      const res = await findMinRam(
        async (k): Promise<Attempt> => {
          const log = join(dir, `minram-${ctx.variant}-${k}K.log`);
          const b = await bootAtKiB(ctx, k, log, o.minRamTimeoutMs ?? getProfile(ctx.userspace).bootTimeoutMs ?? 30_000);
          // A hang or a missing power-off: say when the log shows memory running out first.
          const oom = !b.ok && b.failure?.kind !== 'panic' && existsSync(log) ? oomLineFromLog(readFileSync(log, 'utf8')) : undefined;
          const failure = b.failure && oom ? { ...b.failure, line: `${b.failure.line}; before that: ${oom}` } : b.failure;
          return { kib: k, ok: b.ok, failure, memoryLine: b.memoryLine, log };
        },
        { loMiB: 0, hiMiB: 16, stepKiB: 64, onAttempt: (a) => info(`  ${ctx.variant} -m ${a.kib}K: ${a.ok ? 'boots' : `fails (${a.failure?.kind}: ${a.failure?.line})`}`) },
      );
      const best = res.attempts.find((a) => a.kib === res.minKiB);
      const bestLog = best?.log && existsSync(best.log) ? readFileSync(best.log, 'utf8') : '';
      const memory = memoryFromLog(bestLog);
      const out: MinRamOf = {
        minKiB: res.minKiB,
        attempts: res.attempts.map((a) => ({ kib: a.kib, ok: a.ok, ...(a.failure ? { kind: a.failure.kind } : {}) })),
      };
      if (res.below) out.below = { kib: res.below.kib, kind: res.below.failure?.kind ?? '?', line: res.below.failure?.line ?? '' };
      if (memory) {
        out.memory = memory;
        out.account = accountRam(memory, ctx.variant === 'xip' ? xs : ss, hashTablesFromLog(bestLog));
      }
      return out;
    };
    const mx = await of(xip);
    const ms = await of(stock);
    r.minRam = { xip: mx, stock: ms, savedKiB: ms.minKiB - mx.minKiB, stepKiB: 64 };
    r.commands.push('bisection over -m: whole MiB from 16 MiB down, then 64 KiB steps (qemu -m <N>K)');
  }

  // 3. Boot cost in guest instructions.
  if (o.bootCost !== false) {
    const runs = o.runs ?? 2;
    const vmlinuz = vmlinuzPath(stock);
    if (!existsSync(vmlinuz)) throw badInput(`${vmlinuz} not found: build the stock variant (xip --config ${stock.config} --variant stock build)`);
    const memMiB = 64;
    const one = async (what: 'xip' | 'vmlinux' | 'vmlinuz', i: number): Promise<BootCost> => {
      const ctx = what === 'xip' ? xip : stock;
      return measureBootCost({
        board: ctx.board,
        variant: ctx.variant,
        bios: what === 'xip' ? xip.imagePath : undefined,
        kernel: what === 'vmlinux' ? stock.vmlinux : what === 'vmlinuz' ? vmlinuz : undefined,
        symbols: ctx.vmlinux,
        initEntry: elfEntry(join(ctx.variantDir, 'userspace', 'init')),
        memMiB,
        log: join(dir, `icount-${what}-${i + 1}.log`),
      });
    };
    const bc = { method: bootCostMethod([xip.board]), memMiB, xip: [] as BootCost[], vmlinux: [] as BootCost[], vmlinuz: [] as BootCost[] };
    for (let i = 0; i < runs; i++) {
      for (const w of ['xip', 'vmlinux', 'vmlinuz'] as const) {
        info(`measure: guest instructions, ${w}, run ${i + 1}/${runs}`);
        bc[w].push(await one(w, i));
      }
    }
    r.bootCost = bc;
    for (const w of ['xip', 'vmlinux', 'vmlinuz'] as const) {
      const set = new Set(bc[w].map((c) => JSON.stringify(c)));
      if (set.size > 1) notes.push(`boot cost of ${w} differed between runs: ${[...set].join(' / ')}`);
    }
    r.commands.push(
      `${qemuOf(xip.board).binary} ... -m ${memMiB}M -icount shift=0,sleep=off,rr=record,rrfile=... -S -gdb chardev:... -qmp unix:... -serial file:... ${RTC_ARGS.join(' ')} (breakpoints through the gdbstub, counts through QMP query-replay)`,
    );
  }

  // 4. Flash.
  try {
    r.flash = flashUseOf(xip);
  } catch (e) {
    notes.push(`flash: ${(e as Error).message}`);
  }

  // 5. Build times (slow: a clean build in a fresh clone).
  if (o.buildTime) {
    r.build = await measureBuildTimes(built.xip, { log: join(dir, 'build-time.log') });
    r.commands.push(r.build.command);
  }
  return r;
}

/**
 * How the boot cost is measured, as the results file and the README say
 * it, with the Count rate the debugger gives the guest on these boards
 * (each rate with its boards when they differ).
 */
export function bootCostMethod(boards: readonly Pick<BoardData, 'name' | 'qemu'>[]): string {
  return (
    'QEMU -icount shift=0,sleep=off,rr=record: every guest instruction counted; QMP query-replay reads the count when the gdbstub stops the guest ' +
    'at a breakpoint (start_kernel and run_init_process from the vmlinux symbol table, PID 1 at the entry point of /init). ' +
    'The console goes to a file (a pipe makes the guest poll the UART for as long as the host takes to read). ' +
    'To PID 1, the RTC runs on the virtual clock from a fixed date and the debugger skips estimate_frequencies() ' +
    `(its RTC busy-wait lasts 1-2 virtual seconds): it sets mips_hpt_frequency to QEMU's Count rate (${countRates(boards)}) and returns at once. ` +
    'For vmlinuz, start_kernel is the address from the stock vmlinux (the decompressor places that same image).'
  );
}

/** The boards' Count rates in MHz: "160 MHz", or "160 MHz on a, b; 100 MHz on c" when they differ. */
function countRates(boards: readonly Pick<BoardData, 'name' | 'qemu'>[]): string {
  const byRate = new Map<string, string[]>();
  for (const b of boards) {
    const mhz = `${countRate(b) / 1e6} MHz`;
    byRate.set(mhz, [...(byRate.get(mhz) ?? []), b.name]);
  }
  if (byRate.size === 0) return "the board's qemu.countHz";
  if (byRate.size === 1) return [...byRate.keys()][0]!;
  return [...byRate].map(([mhz, names]) => `${mhz} on ${[...new Set(names)].join(', ')}`).join('; ');
}

/** bench/results-<config>.json */
export function resultsPath(repo: string, config: string): string {
  return join(repo, 'bench', `results-${config.replace(/_defconfig$/, '')}.json`);
}

/**
 * Write a results file, after checking that what lands in it (the JSON, as
 * `xip report` will read it back) fits the schema. Data that does not is a
 * bug of the measuring code: the file is left as it was, and the numbers go
 * to <path>.rejected so that a long measurement is not lost.
 */
export function saveResults(r: Results, path: string): void {
  const text = `${JSON.stringify(r, null, 2)}\n`;
  const c = checkResults(JSON.parse(text));
  if (!c.ok) {
    const aside = `${path}.rejected`;
    writeFileAtomic(aside, text);
    throw new XipError(`${path}: results do not fit the results schema (${c.problem}); not written, the numbers are in ${aside}`);
  }
  writeFileAtomic(path, text);
}
