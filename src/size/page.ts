import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import type { BuildContext } from '../context.ts';
import { readImageReport } from '../image/stage.ts';
import { resultsPath } from '../measure/index.ts';
import { readResults } from '../report/readme.ts';
import { sizeOfBuiltDir } from './build.ts';
import { XipError } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { type HtmlReportInput, renderSizeHtml } from './html.ts';
import type { SizeNode, SizeReport } from './types.ts';
import { thousands } from '../text.ts';

const num = thousands;

/** Symbols kept per object in the page; the rest become one "(N smaller symbols)" cell, so the page stays small. */
export const PAGE_SYMBOLS = 12;

/** The tree with each object's symbols cut to its largest `keep` (same bytes at every level). */
export function pruneSymbols(n: SizeNode, keep = PAGE_SYMBOLS): SizeNode {
  if (!n.children) return n;
  if (n.kind === 'object' && n.children.length > keep + 1) {
    const sorted = [...n.children].sort((a, b) => b.bytes - a.bytes);
    const rest = sorted.slice(keep);
    const bytes = rest.reduce((t, c) => t + c.bytes, 0);
    return { ...n, children: [...sorted.slice(0, keep), { name: `(${rest.length} smaller symbols)`, bytes, kind: 'other' }] };
  }
  return { ...n, children: n.children.map((c) => pruneSymbols(c, keep)) };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * What `xip report --html` shows for a build: its size tree (measured from
 * the build now), its partition map with the bytes the image fills in
 * each, and, from bench/results-<config>.json, the Memory: lines of XIP
 * against stock and the other bench numbers, labelled with when and at
 * which commit they were measured (they are not re-measured here).
 */
export function htmlInputOf(ctx: BuildContext, generated = new Date()): HtmlReportInput {
  const full = sizeOfBuiltDir(ctx.variantDir);
  // The build named as a user would name it (relative to the repository), not by this machine's path.
  const dir = relative(ctx.repo, full.build.dir);
  const build = dir.startsWith('..') ? full.build : { ...full.build, dir };
  const size: SizeReport = { ...full, build, ...(full.flash ? { flash: pruneSymbols(full.flash) } : {}), ram: pruneSymbols(full.ram) };
  const image = readImageReport(ctx);
  const input: HtmlReportInput = {
    title: `${ctx.config.replace(/_defconfig$/, '')} ${ctx.variant}-${ctx.toolchain} (${ctx.userspace}): flash and RAM`,
    generated: generated.toISOString(),
    size,
  };
  if (image) {
    input.partitions = image.partitions.map((p) => {
      const start = ctx.board.flashPhys + p.offset;
      const end = start + p.size;
      const used = image.layout.regions
        .filter((r) => r.name !== 'free' && r.start >= start && r.end <= end)
        .reduce((n, r) => n + r.size, 0);
      return { name: p.name, offset: p.offset, size: p.size, content: p.content, readOnly: p.readOnly, usedBytes: used };
    });
  }
  const file = resultsPath(ctx.repo, ctx.config);
  if (existsSync(file)) {
    const r = readResults(file);
    const when = `bench/results-${ctx.config.replace(/_defconfig$/, '')}.json, ${r.toolchain}, measured ${r.machine.date.slice(0, 10)} at ${r.machine.gitCommit} (Linux ${r.machine.kernelVersion})`;
    if (r.ram) input.memory = r.ram.sizes.map((s) => ({ memMiB: s.memMiB, xip: s.xip, stock: s.stock }));
    const bench: { label: string; value: string }[] = [{ label: 'source', value: when }];
    if (r.minRam) bench.push({ label: 'minimum RAM that boots (XIP / stock)', value: `${num(r.minRam.xip.minKiB)} KiB / ${num(r.minRam.stock.minKiB)} KiB (${num(r.minRam.savedKiB)} KiB less)` });
    if (r.bootCost) {
      const m = (runs: { toRunInit?: number }[]) => num(median(runs.map((x) => x.toRunInit ?? 0)));
      bench.push({ label: `instructions to run_init_process at ${r.bootCost.memMiB} MiB (XIP / vmlinux / vmlinuz)`, value: `${m(r.bootCost.xip)} / ${m(r.bootCost.vmlinux)} / ${m(r.bootCost.vmlinuz)}` });
    }
    if (r.flash) bench.push({ label: 'flash image in use / chip', value: `${num(r.flash.imageBytes)} / ${num(r.flash.budgetBytes)} bytes` });
    input.bench = bench;
  }
  return input;
}

/** Write the page atomically; returns its size in bytes. */
export function writeSizeHtml(ctx: BuildContext, out: string): number {
  const html = renderSizeHtml(htmlInputOf(ctx));
  writeFileAtomic(out, html);
  return Buffer.byteLength(html);
}

/** What the page must report once drawn (set by assets/size-report/treemap.js). */
interface PageState {
  ready: boolean;
  treemaps: number;
  rects: number;
}

/**
 * Open the page in headless chromium and hold it to what a user would see:
 * the treemaps drawn, no error on the console, no request leaving the file;
 * then save a PNG of it (written atomically).
 */
export async function shootPage(html: string, png: string, viewport = { width: 1280, height: 1400 }): Promise<{ png: string; rects: number }> {
  const { inspectPage } = await import('../report/browser.ts');
  const r = await inspectPage({
    htmlPath: html,
    waitFor: 'window.__xipReport && window.__xipReport.ready === true',
    evaluate: 'JSON.stringify({ ready: window.__xipReport.ready, treemaps: window.__xipReport.treemaps, rects: document.querySelectorAll("rect.node").length })',
    screenshot: true,
    viewport,
  });
  if (r.errors.length > 0) throw new XipError(`${html}: the page logged ${r.errors.length} error(s) in chromium: ${r.errors[0]}`);
  if (r.externalRequests.length > 0) throw new XipError(`${html}: the page requested ${r.externalRequests[0]}: a size report must be self-contained`);
  const state = JSON.parse(String(r.value)) as PageState;
  if (state.rects === 0) throw new XipError(`${html}: chromium drew no treemap cells`);
  if (!r.png) throw new XipError(`${html}: chromium returned no screenshot`);
  writeFileAtomic(png, r.png);
  return { png, rects: state.rects };
}
