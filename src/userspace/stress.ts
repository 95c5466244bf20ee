import { join, resolve } from 'node:path';
import type { BuildContext } from '../context.ts';
import { buildFreestanding, hashToolchainAndBoard } from './program.ts';
import type { InitramfsEntry } from './initramfs.ts';
import { KERNEL_MARKERS } from './markers.ts';
import type { BootExpectation, UserspaceBuild } from './types.ts';

/**
 * The 'stress' userspace profile: userspace/stress/stress.c runs as PID 1
 * and exercises what the XIP port moved around (TLB handlers, clear_page and
 * copy_page generated into RAM) plus fork, exec, mmap, signals, pipes and
 * memory pressure; userspace/stress/child.c is the second program it execs
 * (/bin/stress-child). Both are freestanding (raw o32 system calls, no
 * libc), built like the boot-test init (src/userspace/init.ts) with the
 * toolchain of the build.
 *
 * PID 1 prints one line per part, "STRESS-<PART>: k=v ... checksum 0x... ok"
 * (or "FAIL <why>"), then STRESS-TOTAL, STRESS-PASS or STRESS-FAIL, and
 * powers off.
 */
export const STRESS_PROGRAMS = ['stress', 'child'] as const;
export type StressProgram = (typeof STRESS_PROGRAMS)[number];

/** The parts, in the order PID 1 runs them. */
export const STRESS_PARTS = ['TLB', 'FORK-COW', 'ZERO', 'EXEC', 'MMAP', 'SIGNAL', 'TREE', 'PIPE', 'PRESSURE'] as const;

/** The part whose counts depend on the RAM size (only its checksum is comparable). */
export const RAM_DEPENDENT_PART = 'PRESSURE';

export const STRESS_MARKERS: readonly string[] = [
  ...KERNEL_MARKERS,
  'STRESS-START',
  ...STRESS_PARTS.map((p) => `STRESS-${p}:`),
  'STRESS-TOTAL:',
  'STRESS-PASS',
  'XIP-POWEROFF:',
];

export function stressDir(repo: string): string {
  return join(repo, 'userspace', 'stress');
}

/** The link script shared with the boot-test init: one RWX PT_LOAD, no ABI-flags header. */
export function stressLinkScript(repo: string): string {
  return join(repo, 'userspace', 'init.lds');
}

/** Build one stress program (stripped, checked, written atomically: src/userspace/program.ts). */
export async function buildStressProgram(ctx: BuildContext, program: StressProgram, outPath: string): Promise<void> {
  const src = join(stressDir(ctx.repo), `${program}.c`);
  await buildFreestanding(ctx, { what: `stress ${program}`, sources: [src], lds: stressLinkScript(ctx.repo) }, outPath);
}

/** The initramfs: /dev/console, /init (stress), /bin/stress-child. */
export function stressInitramfs(initPath: string, childPath: string): InitramfsEntry[] {
  return [
    { type: 'dir', name: '/dev', mode: 0o755, uid: 0, gid: 0 },
    { type: 'nod', name: '/dev/console', mode: 0o600, uid: 0, gid: 0, devType: 'c', major: 5, minor: 1 },
    { type: 'dir', name: '/bin', mode: 0o755, uid: 0, gid: 0 },
    { type: 'file', name: '/init', location: resolve(initPath), mode: 0o755, uid: 0, gid: 0 },
    { type: 'file', name: '/bin/stress-child', location: resolve(childPath), mode: 0o755, uid: 0, gid: 0 },
  ];
}

export const stressBuild: UserspaceBuild = {
  name: 'stress',
  description: 'stress PID 1 (userspace/stress/): TLB, fork/COW, zero pages, exec, mmap, signals, process tree, pipes, memory pressure',
  inputs(h, ctx) {
    hashToolchainAndBoard(h, ctx);
    h.tree('userspace/stress', stressDir(ctx.repo));
    h.file('init.lds', stressLinkScript(ctx.repo));
  },
  async build(ctx, dir) {
    const init = join(dir, 'init');
    const child = join(dir, 'stress-child');
    await buildStressProgram(ctx, 'stress', init);
    await buildStressProgram(ctx, 'child', child);
    return stressInitramfs(init, child);
  },
};

export const stressBoot: BootExpectation = {
  markers: STRESS_MARKERS,
  // The memory-pressure part fills all of RAM: a few seconds at 256 MiB, more on a slow host.
  bootTimeoutMs: 240_000,
};

/** One result line of the stress program. */
export interface StressResult {
  part: string;
  /** The k=v counts, in order. */
  counts: Record<string, string>;
  checksum: string;
  ok: boolean;
  /** Why it failed (after FAIL). */
  why?: string;
  line: string;
}

const RESULT_LINE = /STRESS-([A-Z-]+):((?: [a-z]+=\S+)*) checksum (0x[0-9a-f]{8})(?: (ok)| FAIL ?(.*))?\s*$/;

/** The STRESS-<PART> and STRESS-TOTAL lines of a console log, by part name. */
export function parseStressLog(log: string): Map<string, StressResult> {
  const out = new Map<string, StressResult>();
  for (const raw of log.split('\n')) {
    const line = raw.replace(/\r/g, '');
    const m = RESULT_LINE.exec(line);
    if (!m?.[1] || !m[3]) continue;
    const counts: Record<string, string> = {};
    for (const kv of (m[2] ?? '').trim().split(/\s+/).filter(Boolean)) {
      const [k, v] = kv.split('=');
      if (k !== undefined && v !== undefined) counts[k] = v;
    }
    const part = m[1];
    out.set(part, {
      part,
      counts,
      checksum: m[3],
      ok: part === 'TOTAL' ? counts.failed === '0' : m[4] === 'ok',
      why: m[5],
      line: line.slice(line.indexOf('STRESS-')).trim(),
    });
  }
  return out;
}

/**
 * What must be the same on every kernel and RAM size: every line as printed,
 * except the RAM-dependent part, of which only the checksum counts.
 */
export function comparableStressLines(results: Map<string, StressResult>): string[] {
  return [...results.values()].map((r) =>
    r.part === RAM_DEPENDENT_PART ? `STRESS-${r.part}: checksum ${r.checksum} ${r.ok ? 'ok' : 'FAIL'}` : r.line,
  );
}
