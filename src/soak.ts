import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildContext } from './context.ts';
import { badInput, XipError } from './errors.ts';
import { info } from './log.ts';
import { bootBuilt } from './pipeline.ts';

/**
 * `xip soak`: boot the XIP flash image N times in a row (each boot must
 * pass like `xip boot`: markers in order, no panic, a clean power-off) and
 * report the failures and the spread of boot times. Every failed boot's
 * console log is kept as <variant dir>/soak/failed-<n>.log; a single
 * failure fails the soak.
 */
export interface SoakOptions {
  count: number;
  memMiB: number;
  timeoutMs?: number;
}

export interface SoakFailure {
  boot: number;
  kind: string;
  line: string;
  log: string;
}

export interface SoakReport {
  image: string;
  memMiB: number;
  boots: number;
  passed: number;
  failures: SoakFailure[];
  /** Wall time of each boot, QEMU start to exit (ms). */
  ms: number[];
  minMs: number;
  medianMs: number;
  maxMs: number;
}

export function soakDir(ctx: BuildContext): string {
  return join(ctx.variantDir, 'soak');
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export async function soak(ctx: BuildContext, o: SoakOptions): Promise<SoakReport> {
  if (ctx.variant !== 'xip') throw badInput(`soak boots the XIP flash image: use --variant xip (got ${ctx.variant})`);
  if (!Number.isInteger(o.count) || o.count < 1) throw badInput(`--count '${o.count}': give a whole number of boots, 1 or more`);
  if (!existsSync(ctx.imagePath)) throw badInput(`${ctx.imagePath} not found: build it first with xip build && xip image (make)`);
  const dir = soakDir(ctx);
  mkdirSync(dir, { recursive: true });
  const failures: SoakFailure[] = [];
  const ms: number[] = [];
  for (let n = 1; n <= o.count; n++) {
    // Per process: two soaks of one image at once do not share a log.
    const log = join(dir, `current-${process.pid}.log`);
    const r = await bootBuilt({ ...ctx, bootLog: log }, { memMiB: o.memMiB, timeoutMs: o.timeoutMs });
    ms.push(r.ms);
    if (!r.ok) {
      const kept = join(dir, `failed-${n}.log`);
      if (existsSync(log)) copyFileSync(log, kept);
      const f = r.failure ?? { kind: 'exit', line: `QEMU exit code ${r.exitCode}` };
      failures.push({ boot: n, kind: f.kind, line: f.line, log: kept });
      info(`soak: boot ${n}/${o.count} FAILED (${f.kind}): ${f.line}; log kept: ${kept}`);
    } else {
      info(`soak: boot ${n}/${o.count} ok in ${(r.ms / 1000).toFixed(2)}s`);
    }
  }
  rmSync(join(dir, `current-${process.pid}.log`), { force: true });
  return {
    image: ctx.imagePath,
    memMiB: o.memMiB,
    boots: o.count,
    passed: o.count - failures.length,
    failures,
    ms,
    minMs: Math.min(...ms),
    medianMs: median(ms),
    maxMs: Math.max(...ms),
  };
}

export function formatSoak(r: SoakReport): string {
  const s = (x: number) => `${(x / 1000).toFixed(2)}s`;
  const lines = [
    `soak: ${r.boots} boots of ${r.image} at ${r.memMiB} MiB: ${r.passed} passed, ${r.failures.length} failed`,
    `soak: boot time min ${s(r.minMs)}, median ${s(r.medianMs)}, max ${s(r.maxMs)} (spread ${s(r.maxMs - r.minMs)})`,
  ];
  for (const f of r.failures) lines.push(`soak: boot ${f.boot} failed (${f.kind}): ${f.line}; log ${f.log}`);
  return lines.join('\n');
}

/** Throws when any boot failed (after the report was printed). */
export function assertSoaked(r: SoakReport): void {
  if (r.failures.length === 0) return;
  const first = r.failures[0]!;
  throw new XipError(
    `soak: ${r.failures.length} of ${r.boots} boots failed; first: boot ${first.boot} (${first.kind}): ${first.line}; log kept: ${first.log}`,
  );
}
