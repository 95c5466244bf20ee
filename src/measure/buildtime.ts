import { existsSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildContext } from '../context.ts';
import { XipError } from '../errors.ts';
import { info } from '../log.ts';
import { run } from '../proc.ts';

/**
 * Build times on this machine: a clean build (`make` in a fresh clone of
 * this repository under /tmp, with its own build directory: kernel source
 * unpacked and patched, init, kernel, flash image) and a no-op `make` right
 * after it in the same clone. The clone gets a copy of node_modules (npm ci
 * would need the network; it is not part of what is being timed) and is
 * removed afterwards.
 */
export interface BuildTimes {
  config: string;
  /** Seconds of the clean `make`. */
  cleanSeconds: number;
  /** Seconds of the second `make`, with nothing changed. */
  noopSeconds: number;
  jobs: number;
  command: string;
}

export async function measureBuildTimes(ctx: BuildContext, o: { jobs?: number; log: string }): Promise<BuildTimes> {
  const jobs = o.jobs ?? 2;
  const clone = mkdtempSync(join(tmpdir(), 'xip-bench-clone-'));
  try {
    info(`build time: cloning ${ctx.repo} into ${clone}`);
    await run('git', ['clone', '--quiet', '--no-hardlinks', ctx.repo, clone], { log: o.log, what: 'git clone' });
    if (!existsSync(join(ctx.repo, 'node_modules'))) {
      throw new XipError(`${ctx.repo}/node_modules missing: run npm ci (make deps) first`);
    }
    await run('cp', ['-a', join(ctx.repo, 'node_modules'), join(clone, 'node_modules')], { log: o.log, what: 'copy node_modules' });
    // The Makefile reinstalls node_modules when its stamp is older than package.json: it is current.
    const now = new Date();
    utimesSync(join(clone, 'node_modules', '.package-lock.json'), now, now);
    const env: NodeJS.ProcessEnv = { ...process.env, CONFIG: ctx.config, TOOLCHAIN: ctx.toolchain, XIP_JOBS: String(jobs), CI: 'true' };
    delete env.VARIANT;
    delete env.USERSPACE;
    const make = async (what: string) => {
      const t = process.hrtime.bigint();
      await run('nice', ['-n', '10', 'make', '-C', clone], { env, log: o.log, what, timeoutMs: 60 * 60 * 1000 });
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    info(`build time: clean make (CONFIG=${ctx.config}, -j${jobs}); log ${o.log}`);
    const cleanSeconds = await make('clean build');
    info(`build time: clean ${cleanSeconds.toFixed(1)} s; now a no-op make`);
    const noopSeconds = await make('no-op build');
    return {
      config: ctx.config,
      cleanSeconds,
      noopSeconds,
      jobs,
      command: `git clone; nice -n 10 make CONFIG=${ctx.config} XIP_JOBS=${jobs} (twice)`,
    };
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}
