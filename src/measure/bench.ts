import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeContext } from '../context.ts';
import { XipError } from '../errors.ts';
import { info, warn } from '../log.ts';
import { build, image } from '../pipeline.ts';
import { formatResults } from '../report/format.ts';
import { updateReadme } from '../report/readme.ts';
import { measure, resultsPath, saveResults } from './index.ts';

/**
 * `xip bench` (make bench): for the board's minimal and router configs,
 * build what is missing (XIP kernel + image, stock kernel; no-ops when up
 * to date), measure everything, write bench/results-<config>.json (checked
 * against the results schema first), then regenerate the README's results
 * section from every results file (each validated; one that is not leaves
 * the README as it was and fails the bench with its name and field). A
 * config whose defconfig does not exist is reported as not measured; a
 * config that fails is reported and the others still run.
 */
export interface BenchOptions {
  board?: string;
  toolchain?: string;
  buildDir?: string;
  buildTime?: boolean;
  configs?: string[];
}

export async function bench(o: BenchOptions): Promise<{ measured: string[]; missing: string[]; failed: string[] }> {
  const probe = makeContext({ board: o.board, toolchain: o.toolchain, buildDir: o.buildDir });
  const configs = o.configs ?? [probe.board.defconfigs.minimal, ...(probe.board.defconfigs.router ? [probe.board.defconfigs.router] : [])];
  const measured: string[] = [];
  const missing: string[] = [];
  const failed: string[] = [];
  for (const config of configs) {
    const def = join(probe.repo, 'kernel', 'configs', config);
    if (!existsSync(def)) {
      const why = `${config}: kernel/configs/${config} does not exist yet, so this config was not measured`;
      warn(`bench: ${why}`);
      missing.push(why);
      continue;
    }
    try {
      info(`bench: ${config}`);
      const base = { board: o.board, config, toolchain: o.toolchain, buildDir: o.buildDir };
      const x = makeContext({ ...base, variant: 'xip' });
      await build(x);
      await image(x);
      await build(makeContext({ ...base, variant: 'stock' }));
      const r = await measure({ ...base, buildTime: o.buildTime });
      // The numbers first: they are on the terminal even if saveResults refuses them (schema).
      process.stdout.write(`${formatResults(r)}\n\n`);
      const p = resultsPath(probe.repo, config);
      saveResults(r, p);
      info(`bench: results ${p}`);
      measured.push(config);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      warn(`bench: ${config} failed: ${msg}`);
      failed.push(`${config}: ${msg}`);
    }
  }
  if (measured.length + failed.length === 0 && missing.length > 0 && !existsSync(resultsPath(probe.repo, configs[0]!))) {
    throw new XipError('bench: no config could be measured');
  }
  const u = updateReadme(probe.repo, { missing: [...missing, ...failed.map((f) => `${f} (measurement failed)`)] });
  info(`bench: ${u.path} ${u.changed ? 'results section rewritten' : 'unchanged'} from ${u.files.map((f) => f.slice(probe.repo.length + 1)).join(', ')}`);
  return { measured, missing, failed };
}
