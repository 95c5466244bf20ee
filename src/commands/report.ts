import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { EXIT, XipError } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip report`: the README results section, from bench/results-*.json; or the HTML size report of a build. */
export interface ReportCommandOptions {
  missing?: string[];
  html?: string | boolean;
  screenshot?: string;
}

export function define(program: Command): Command {
  return program
    .command('report')
    .description('README results from bench/results-*.json; --html: the size report')
    .option('--missing <text...>', 'note a config that was not measured, and why')
    .option('--html [file]', 'write the self-contained HTML size report of the build (default build/out/size-report.html)')
    .option('--screenshot <png>', 'with --html: open the page in headless chromium, check it renders without errors, save a PNG');
}

export async function handler(g: GlobalOptions, o: ReportCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  if (o.html === undefined) {
    if (o.screenshot !== undefined) throw new XipError('--screenshot needs --html: it shows the HTML report', { exitCode: EXIT.badInput });
    const { updateReadme } = await import('../report/readme.ts');
    const u = updateReadme(ctx.repo, { missing: o.missing });
    info(`${u.path}: ${u.changed ? 'results section rewritten' : 'results section already up to date'} from ${u.files.length} results file(s)`);
    return EXIT.ok;
  }
  const { writeSizeHtml } = await import('../size/page.ts');
  const out = typeof o.html === 'string' ? resolve(o.html) : join(ctx.buildDir, 'out', 'size-report.html');
  const bytes = writeSizeHtml(ctx, out);
  info(`${out}: size report of ${ctx.variantDir} (${Math.round(bytes / 1024)} KiB)`);
  if (o.screenshot !== undefined) {
    const { shootPage } = await import('../size/page.ts');
    const shot = await shootPage(out, resolve(o.screenshot));
    info(`${shot.png}: ${shot.rects} treemap cells drawn, no console errors, no requests outside the file`);
  }
  return EXIT.ok;
}
