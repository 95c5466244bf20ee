import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../boards/board.ts';
import { KSEG0, kseg0, partitionOf } from '../boards/board.ts';
import { STT, readElf } from '../elf/elf32.ts';
import { badInput, XipError, EXIT } from '../errors.ts';
import { samplePcs } from '../qemu/qmp.ts';
import { boot, type BootResult } from '../qemu/runner.ts';
import { freeLoopbackPort, requestWithRetries, routerNicArgs, type HttpAnswer } from '../userspace/routerboot.ts';
import { KERNEL_MARKERS, LWRT_READY, ROUTER_MARKERS } from '../userspace/markers.ts';
import { readSettings } from './format.ts';

/**
 * The power-cut test of the router's settings (docs/settings.md), driven
 * from the host against a copy of a root-in-flash router image booted as
 * the CFI chip's backing file (-drive if=pflash), so that what the guest
 * writes to its flash stays there across boots, as on a board:
 *
 * 1. a clean write: boot, store a hostname over HTTP, power off; boot
 *    again, the new hostname is there;
 * 2. the kernel keeps executing from flash while the CFI driver writes:
 *    the guest PC is sampled over QMP during a burst of writes, and must be
 *    seen in the kernel's flash text (and may be seen in the write path,
 *    which runs from RAM);
 * 3. N power cuts: boot (this boot also reads back what the previous cut
 *    left), store a new hostname, and when the guest prints that the write
 *    has begun, SIGKILL QEMU after a random delay of up to twice a whole
 *    write. The next boot must come up with either the old or the new
 *    hostname, never anything else, every time.
 */

/** The number of power cuts the settings test makes (default 50); CI's Debian 12 root makes fewer, to stay in its time limit. */
export const POWERCUT_RUNS_ENV = 'XIP_POWERCUT_RUNS';

/** $XIP_POWERCUT_RUNS as a number of cuts (default 50); one line naming a value that is not a whole number from 1 up. */
export function powercutRuns(value = process.env[POWERCUT_RUNS_ENV]): number {
  if (value === undefined || value === '') return 50;
  if (!/^[1-9][0-9]*$/.test(value)) throw badInput(`${POWERCUT_RUNS_ENV}='${value}' is not a number of power cuts: give a whole number from 1 up, or unset it for 50`);
  return Number(value);
}

export interface PowerCutOptions {
  board: Board;
  /** The built flash image (read only: the runs use a copy). */
  image: string;
  /** The kernel of the image, for telling its flash text from its RAM code in the samples. */
  vmlinux: string;
  /** The flash copy and each boot's console log go here. */
  workDir: string;
  runs: number;
  memMiB: number;
  seed: number;
  /** Writes in the sampled burst (step 2). */
  burst?: number;
  progress?: (text: string) => void;
}

/** What the router printed at boot: `LWRT-SETTINGS: slot=S seq=N hostname=H`. */
export interface SettingsLine {
  slot: string;
  seq: number;
  hostname: string;
}

export function parseSettingsLine(line: string): SettingsLine | undefined {
  const m = /LWRT-SETTINGS: slot=(\S+) seq=(\d+) hostname=(\S*)/.exec(line);
  return m ? { slot: m[1]!, seq: Number(m[2]), hostname: m[3]! } : undefined;
}

export interface CutRun {
  run: number;
  /** Hostname before the write, and the one being written. */
  old: string;
  wrote: string;
  /** Delay from the guest's XSET-BEGIN (as the host saw it) to the SIGKILL. */
  delayMs: number;
  /** XSET-DONE reached the host before the cut. */
  doneBeforeCut: boolean;
  /** What the next boot found. */
  after?: SettingsLine;
  outcome?: 'old' | 'new' | 'other' | 'no-boot';
  log: string;
}

export interface PowerCutReport {
  seed: number;
  memMiB: number;
  /** Host-observed length of a write (XSET-BEGIN to XSET-DONE): the longest of the clean write and three unsampled ones after the burst, at least MIN_WRITE_MS; the cuts fall in twice that. */
  writeMs: number;
  clean: { wrote: string; after: string };
  /** PC samples during the burst of writes: in the kernel's flash text, in kernel code in RAM (of it: in the XIP-aware MTD functions), in user space. */
  samples: { total: number; kernelFlash: number; kernelRam: number; mtdRam: number; user: number; writes: number };
  runs: CutRun[];
  old: number;
  new: number;
  failures: number;
  /** Cuts that hit before XSET-DONE was seen. */
  midWrite: number;
}

/** xorshift32: the cut delays, reproducible from the seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

interface GuestBoot {
  result: BootResult;
  settings?: SettingsLine;
  ready: boolean;
  /** Every write the console showed: host times of its XSET-BEGIN and XSET-DONE (writes[0]: the boot's first). */
  writes: Array<{ begin: number; done?: number }>;
  answers: HttpAnswer[];
  error?: string;
}

interface GuestPlan {
  log: string;
  /** Markers the boot must show (a cut boot: up to LWRT-READY only). */
  markers: readonly string[];
  /** Once LWRT-READY is printed: talk to the router over HTTP (port), with `cut` to pull the power. */
  talk: (g: { port: number; boot: GuestBoot; cut: () => void; qmp: string }) => Promise<void>;
  /** Called when XSET-BEGIN appears (host time). */
  onBegin?: (cut: () => void) => void;
  timeoutMs: number;
}


/** One boot of the flash copy with the router's NIC on a loopback port and QMP on a socket. */
async function guest(o: PowerCutOptions, flash: string, plan: GuestPlan): Promise<GuestBoot> {
  const port = await freeLoopbackPort();
  const qmp = join(o.workDir, 'qmp.sock');
  const power = new AbortController();
  const cut = () => power.abort();
  const g: GuestBoot = { result: undefined as unknown as BootResult, ready: false, writes: [], answers: [] };
  let talking: Promise<void> = Promise.resolve();
  g.result = await boot({
    board: o.board,
    variant: 'xip',
    pflash: flash,
    memMiB: o.memMiB,
    log: plan.log,
    timeoutMs: plan.timeoutMs,
    markers: [...plan.markers],
    extraArgs: [...routerNicArgs(o.board, port), '-qmp', `unix:${qmp},server=on,wait=off`],
    powerCut: power.signal,
    onLine(line) {
      g.settings ??= parseSettingsLine(line);
      if (line.includes('XSET-BEGIN')) {
        g.writes.push({ begin: Date.now() });
        if (g.writes.length === 1) plan.onBegin?.(cut);
      }
      if (line.includes('XSET-DONE')) {
        const w = g.writes[g.writes.length - 1];
        if (w && w.done === undefined) w.done = Date.now();
      }
      if (!g.ready && line.includes(LWRT_READY)) {
        g.ready = true;
        talking = plan.talk({ port, boot: g, cut, qmp }).catch((err: unknown) => {
          g.error ??= (err as Error).message;
        });
      }
    },
  });
  await talking;
  return g;
}

/** POST to the router and keep the answer in the boot record (none when QEMU went first). */
async function ask(port: number, g: GuestBoot, path: string): Promise<void> {
  const r = await post(port, path);
  if (r) g.answers.push(r);
}

/** POST to the router, with retries while httpd comes up; undefined when QEMU went first. */
async function post(port: number, path: string): Promise<HttpAnswer | undefined> {
  const r = await requestWithRetries(port, 'POST', path, { tries: 5, gapMs: 500 });
  return typeof r === 'string' ? undefined : r;
}

/** Why a boot went wrong, with the end of its console (the test may remove the log with its directory). */
function why(g: GuestBoot): string {
  const tail = (g.result.tail ?? []).slice(-8).join(' | ');
  return `${g.error ?? g.result.failure?.line ?? 'no error'}; console ${g.result.log ?? '?'}: ... ${tail}`;
}

/** The code an XIP kernel generates into RAM buffers at boot (series patch 6), not the MTD code. */
const GENERATED_RAM_CODE = /^(handle_tlb[lsm]|clear_page_ram|copy_page_ram|tlbmiss_handler_setup_pgd)/;

/** The kernel's functions in RAM (.xiptext, with the data) but the generated code: the XIP-aware MTD code, as [start, end) ranges. */
function ramFunctions(vmlinux: string, flashBase: number): Array<[number, number]> {
  return readElf(vmlinux)
    .symbols.filter((s) => s.type === STT.FUNC && s.size > 0 && s.value >>> 0 >= KSEG0 && s.value >>> 0 < flashBase && !GENERATED_RAM_CODE.test(s.name))
    .map((s) => [s.value >>> 0, (s.value + s.size) >>> 0] as [number, number]);
}

/** The least write length the cuts' window (twice it) is based on, ms: see powerCutTest. */
const MIN_WRITE_MS = 8;

export async function powerCutTest(o: PowerCutOptions): Promise<PowerCutReport> {
  if (!Number.isInteger(o.runs) || o.runs < 1) throw badInput(`power-cut runs ${o.runs}: give a whole number of at least 1`);
  const settingsPart = partitionOf(o.board.partitions, 'settings');
  if (!settingsPart) throw badInput(`board ${o.board.name} (${o.board.loader}) has no settings partition: the power-cut test needs one (malta's shim map has it)`);
  mkdirSync(o.workDir, { recursive: true });
  const flash = join(o.workDir, 'flash.bin');
  copyFileSync(o.image, `${flash}.tmp`);
  renameSync(`${flash}.tmp`, flash);
  const part = new Uint8Array(readFileSync(flash)).subarray(settingsPart.offset, settingsPart.offset + settingsPart.size);
  const first = readSettings(part, o.board.eraseSize);
  const token = first.settings.admin_token;
  if (!token) throw badInput(`${o.image}: its settings partition has no admin_token (seq ${first.seq}): build the image of a root-in-flash router (USERSPACE=router-xip)`);
  const say = o.progress ?? (() => undefined);
  const setPath = (host: string) => `/cgi-bin/settings?token=${token}&hostname=${host}`;
  const fail = (text: string): never => {
    throw new XipError(`power-cut test: ${text}`, { exitCode: EXIT.failed });
  };
  const boots = { n: 0 };
  const logOf = (what: string) => join(o.workDir, `boot-${String(++boots.n).padStart(3, '0')}-${what}.log`);
  const clean = ROUTER_MARKERS;
  const timeoutMs = 120_000;

  // 1. A clean write, then a clean power-off.
  say('clean write: boot, store hostname=clean1, power off');
  const a = await guest(o, flash, {
    log: logOf('clean-write'),
    markers: clean,
    timeoutMs,
    talk: async ({ port, boot: g }) => {
      await ask(port, g, setPath('clean1'));
      await ask(port, g, `/cgi-bin/poweroff?token=${token}`);
    },
  });
  if (!a.result.ok || a.answers[0]?.status !== 200) fail(`the clean write failed (${a.answers[0]?.status ?? 'no answer'} ${a.answers[0]?.body.trim() ?? ''}): ${why(a)}`);
  const cleanWrite = a.writes[0];
  if (cleanWrite?.done === undefined) fail(`the clean write printed no XSET-BEGIN/XSET-DONE: ${why(a)}`);

  // 1b and 2. Boot again: the new hostname is there; then a burst of writes while the PC is sampled,
  // and TIMED more without sampling (it stops the guest), whose length as the host sees it sets the cuts' window.
  const burst = o.burst ?? 10;
  const TIMED = 3;
  say(`clean read-back, and ${burst} writes with the guest PC sampled over QMP`);
  let pcs: number[] = [];
  const b = await guest(o, flash, {
    log: logOf('clean-check'),
    markers: clean,
    timeoutMs,
    talk: async ({ port, boot: g, qmp }) => {
      const stop = new AbortController();
      const sampling = samplePcs(qmp, { stop: stop.signal });
      try {
        for (let i = 1; i <= burst; i++) {
          await ask(port, g, setPath(`burst${i}`));
        }
      } finally {
        stop.abort();
        pcs = await sampling;
      }
      for (let i = burst + 1; i <= burst + TIMED; i++) await ask(port, g, setPath(`burst${i}`));
      await ask(port, g, `/cgi-bin/poweroff?token=${token}`);
    },
  });
  if (!b.result.ok) fail(`the boot after the clean write failed: ${why(b)}`);
  if (b.settings?.hostname !== 'clean1') fail(`after a clean write of hostname=clean1 and a clean power-off the router has hostname=${b.settings?.hostname ?? '(no LWRT-SETTINGS line)'}: ${why(b)}`);
  // The clean write's length is no guide: it went to an erased slot (nothing to erase), the cuts' writes do not.
  const timed = b.writes.slice(burst, burst + TIMED).map((w) => (w.done === undefined ? undefined : w.done - w.begin));
  if (timed.length < TIMED || timed.some((ms) => ms === undefined)) fail(`the ${TIMED} timed writes after the burst printed no XSET-BEGIN/XSET-DONE pair each: ${why(b)}`);
  // The host sees a write's console lines late and close together (2-3 ms apart), while the first
  // write of a boot, which each cut is, ends 5-10 ms after its XSET-BEGIN arrives: cuts within 4 ms
  // of it all left the old value (Debian 12 root, 50 of 50), within 6 ms 45 of 50. Hence a floor.
  const writeMs = Math.max(MIN_WRITE_MS, cleanWrite!.done! - cleanWrite!.begin, ...(timed as number[]));
  const bad = b.answers.slice(0, burst + TIMED).filter((r) => r.status !== 200);
  if (bad.length > 0 || b.answers.length < burst + TIMED) fail(`${bad.length || burst + TIMED - b.answers.length} of ${burst + TIMED} burst writes failed (${bad[0]?.status ?? 'no answer'}): ${why(b)}`);
  const flashText = kseg0(o.board.xipPhys);
  const flashEnd = kseg0(o.board.flashPhys + o.board.flashSize);
  const mtd = ramFunctions(o.vmlinux, kseg0(o.board.flashPhys));
  const samples = { total: pcs.length, kernelFlash: 0, kernelRam: 0, mtdRam: 0, user: 0, writes: burst };
  for (const pc of pcs) {
    if (pc < KSEG0) samples.user++;
    else if (pc >= flashText && pc < flashEnd) samples.kernelFlash++;
    else {
      samples.kernelRam++;
      if (mtd.some(([s, e]) => pc >= s && pc < e)) samples.mtdRam++;
    }
  }
  if (samples.kernelFlash === 0) fail(`none of ${pcs.length} PC samples during ${burst} flash writes is in the kernel's flash text (${samples.kernelRam} in kernel RAM, ${samples.user} in user space): ${why(b)}`);

  // 3. Power cuts at random moments of a write.
  const next = rng(o.seed);
  const runs: CutRun[] = [];
  for (let i = 1; i <= o.runs; i++) {
    const wrote = `cut${i}`;
    const delayMs = Math.round(next() * 2 * writeMs * 10) / 10;
    // old: what this boot finds (the previous run's outcome), filled in below.
    const run: CutRun = { run: i, old: '', wrote, delayMs, doneBeforeCut: false, log: logOf(`cut${i}`) };
    say(`cut ${i}/${o.runs}: store hostname=${wrote}, power cut ${delayMs} ms after XSET-BEGIN`);
    const g = await guest(o, flash, {
      log: run.log,
      markers: KERNEL_MARKERS,
      timeoutMs,
      onBegin: (cut) => {
        setTimeout(cut, delayMs);
      },
      talk: async ({ port, boot: gb, cut }) => {
        await ask(port, gb, setPath(wrote));
        // No XSET-BEGIN within 10 s after the answer: cut anyway, the run fails below.
        if (gb.writes.length === 0) setTimeout(cut, 10_000);
      },
    });
    run.doneBeforeCut = g.writes[0]?.done !== undefined;
    if (!g.ready || !g.settings) {
      run.outcome = 'no-boot';
      runs.push(run);
      fail(`cut ${i}: the router did not come up (${g.ready ? 'no LWRT-SETTINGS line' : `no ${LWRT_READY}`}): ${why(g)}`);
    }
    // This boot read back what the previous cut left.
    if (i > 1) judge(runs[i - 2]!, g.settings!);
    else if (g.settings!.hostname !== `burst${burst + TIMED}`) fail(`before the first cut the router has hostname=${g.settings!.hostname}, not burst${burst + TIMED}: ${why(g)}`);
    run.old = g.settings!.hostname;
    if (g.writes.length === 0) fail(`cut ${i}: the write never began (no XSET-BEGIN; answer ${g.answers[0]?.status ?? 'none'}): ${why(g)}`);
    runs.push(run);
  }
  // The last cut is read back by one more boot, which powers off cleanly.
  say('read-back of the last cut');
  const z = await guest(o, flash, {
    log: logOf('final'),
    markers: clean,
    timeoutMs,
    talk: async ({ port, boot: g }) => {
      await ask(port, g, `/cgi-bin/poweroff?token=${token}`);
    },
  });
  if (!z.result.ok || !z.settings) fail(`the boot after the last cut failed: ${why(z)}`);
  judge(runs[runs.length - 1]!, z.settings!);

  const failures = runs.filter((r) => r.outcome !== 'old' && r.outcome !== 'new').length;
  return {
    seed: o.seed,
    memMiB: o.memMiB,
    writeMs,
    clean: { wrote: 'clean1', after: b.settings!.hostname },
    samples,
    runs,
    old: runs.filter((r) => r.outcome === 'old').length,
    new: runs.filter((r) => r.outcome === 'new').length,
    failures,
    midWrite: runs.filter((r) => !r.doneBeforeCut).length,
  };

  /** A run's outcome from the settings the next boot printed. */
  function judge(r: CutRun, after: SettingsLine): void {
    r.after = after;
    r.outcome = after.hostname === r.wrote ? 'new' : after.hostname === r.old ? 'old' : 'other';
  }
}
