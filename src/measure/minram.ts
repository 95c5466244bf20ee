import { XipError } from '../errors.ts';

/**
 * The smallest RAM size at which a kernel still boots to PID 1 and powers
 * off, by bisection: first in whole MiB, then in finer steps (64 KiB: the
 * boot shim probes RAM in 64 KiB steps, so nothing finer changes an XIP
 * boot) inside the last MiB. Booting is a function argument, so the search
 * is tested with a fake. It assumes that a boot that works at N KiB also
 * works above N.
 */
export interface Attempt {
  kib: number;
  ok: boolean;
  /** Why it failed: the runner's failure kind and line. */
  failure?: { kind: string; line: string };
  /** Extra facts of the attempt (e.g. the Memory: line). */
  memoryLine?: string;
  log?: string;
}

export type BootAt = (kib: number) => Promise<Attempt>;

export interface MinRamOptions {
  /** A size known (or assumed) not to boot, in MiB (default 0). */
  loMiB?: number;
  /** A size expected to boot, in MiB (default 16); doubled up to maxMiB when it does not. */
  hiMiB?: number;
  maxMiB?: number;
  /** The fine step in KiB (default 64). */
  stepKiB?: number;
  onAttempt?: (a: Attempt) => void;
}

export interface MinRamResult {
  /** Smallest size (KiB) that boots. */
  minKiB: number;
  /** The attempt one step below it (its failure is the reason), undefined when that is 0 KiB. */
  below?: Attempt;
  /** Every boot, in the order they ran. */
  attempts: Attempt[];
}

export async function findMinRam(bootAt: BootAt, o: MinRamOptions = {}): Promise<MinRamResult> {
  const step = o.stepKiB ?? 64;
  if (!Number.isInteger(step) || step <= 0 || 1024 % step !== 0) {
    throw new XipError(`min RAM: step ${step} KiB must divide 1024`);
  }
  const attempts: Attempt[] = [];
  const tried = new Map<number, Attempt>();
  const at = async (kib: number): Promise<Attempt> => {
    const seen = tried.get(kib);
    if (seen) return seen;
    const a = await bootAt(kib);
    if (a.kib !== kib) throw new Error(`min RAM: boot function answered for ${a.kib} KiB, asked ${kib} KiB`);
    tried.set(kib, a);
    attempts.push(a);
    o.onAttempt?.(a);
    return a;
  };

  // Whole MiB: find hi that boots.
  let lo = o.loMiB ?? 0;
  let hi = Math.max(o.hiMiB ?? 16, lo + 1);
  const max = o.maxMiB ?? 256;
  for (;;) {
    const a = await at(hi * 1024);
    if (a.ok) break;
    if (hi >= max) {
      throw new XipError(`min RAM: does not boot even at ${hi} MiB: ${a.failure?.kind ?? 'failed'}: ${a.failure?.line ?? ''}`);
    }
    lo = hi;
    hi = Math.min(hi * 2, max);
  }
  // Invariant: lo fails (or is the assumed floor), hi boots.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await at(mid * 1024)).ok) hi = mid;
    else lo = mid;
  }
  // Fine steps inside (hi-1 MiB, hi MiB].
  let floK = lo * 1024;
  let fhiK = hi * 1024;
  while (fhiK - floK > step) {
    const mid = floK + Math.floor((fhiK - floK) / step / 2) * step;
    if ((await at(mid)).ok) fhiK = mid;
    else floK = mid;
  }
  // floK is the size one step below: it was booted (and failed) unless it is 0.
  const below = floK > 0 ? tried.get(floK) : undefined;
  return { minKiB: fhiK, below, attempts };
}
