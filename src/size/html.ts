import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../context.ts';
import { hex } from '../text.ts';
import type { SizeNode, SizeReport } from './types.ts';
import type { MemoryFields } from '../measure/memory.ts';

/**
 * The size report as one self-contained HTML page: zoomable treemaps of the
 * flash and the RAM, the flash partition map, the kernel's Memory: lines
 * and bench numbers. Everything is inline (style, data, d3-hierarchy, the
 * client script) so the file can be mailed, archived or opened from a
 * file:// URL with no network. The static parts are written here, escaped;
 * the treemaps are drawn in the browser from the embedded JSON
 * (assets/size-report/treemap.js), one zoom level at a time, since a
 * kernel's tree has tens of thousands of symbols.
 */

/** The numbers of one `Memory:` line, in KiB (cma-reserved left out: always 0 here). */
export type MemoryRow = Omit<MemoryFields, 'cmaReservedKiB'>;

export interface HtmlReportInput {
  title: string;
  /** ISO date of generation. */
  generated: string;
  size: SizeReport;
  /** The flash partition map: offset/size in bytes from the chip start; the chip size is size.flash.bytes. usedBytes: how much of the partition the image fills, when known. */
  partitions?: { name: string; offset: number; size: number; content: string; readOnly: boolean; usedBytes?: number }[];
  /** The kernel's boot-time Memory: accounting at several RAM sizes, XIP against a stock kernel of the same config. */
  memory?: { memMiB: number; xip: MemoryRow; stock: MemoryRow }[];
  /** Other measured numbers, shown as a two-column table. */
  bench?: { label: string; value: string }[];
}

type Partition = NonNullable<HtmlReportInput['partitions']>[number];

const ASSETS = join(REPO_ROOT, 'assets', 'size-report');

/** The Memory: fields in the order the kernel prints them, with its words; `more` says which way is better for XIP. */
const MEMORY_ROWS: readonly [keyof MemoryRow, string, 'more' | 'less' | 'none'][] = [
  ['availableKiB', 'available', 'more'],
  ['totalKiB', 'total', 'none'],
  ['kernelCodeKiB', 'kernel code', 'less'],
  ['rwdataKiB', 'rwdata', 'less'],
  ['rodataKiB', 'rodata', 'less'],
  ['initKiB', 'init', 'less'],
  ['bssKiB', 'bss', 'less'],
  ['reservedKiB', 'reserved', 'less'],
];

/** Partition colours: hue per partition, the used part darker than the rest. */
const PART_HUES = [212, 28, 140, 280, 352, 186, 48, 320, 100, 250];

const ENTITY: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for markup (element content and quoted attribute values alike). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITY[c]!);
}

/** 1234567 → "1,234,567": fixed separators, not the host's locale, so the file is the same everywhere. */
function group3(n: number): string {
  const s = String(Math.round(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? `-${s}` : s;
}

function trimFixed(n: number, digits: number): string {
  return n.toFixed(digits).replace(/\.?0+$/, '');
}

/** A size as a person reads it: "4 MiB", "3.75 MiB", "64 KiB", "512 B". */
function human(bytes: number): string {
  if (bytes >= 1 << 20) return `${trimFixed(bytes / (1 << 20), 2)} MiB`;
  if (bytes >= 1024) return `${trimFixed(bytes / 1024, 1)} KiB`;
  return `${bytes} B`;
}

function pct(part: number, whole: number): string {
  if (!(whole > 0)) return '-';
  const p = (100 * part) / whole;
  return `${p > 0 && p < 1 ? p.toFixed(2) : p.toFixed(1)}%`;
}

function signed(n: number): string {
  return n > 0 ? `+${group3(n)}` : group3(n);
}

let assetCache: { css: string; client: string; d3: string } | undefined;

/**
 * The package folder of d3-hierarchy: resolve() gives its entry point (by
 * its exports, dist/d3-hierarchy.mjs), and the UMD build lies next to it.
 */
function d3Dir(): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve('d3-hierarchy'));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'd3-hierarchy') return dir;
    } catch {
      // no package.json here: look one folder up
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('d3-hierarchy: package folder not found above its entry point');
    dir = up;
  }
}

/**
 * d3-hierarchy's UMD build as shipped, its license line kept; only that
 * line's link loses its scheme ("https://d3js.org/..." becomes
 * "d3js.org/..."), since the page promises to name no URL at all.
 */
function d3Source(): string {
  const src = readFileSync(join(d3Dir(), 'dist', 'd3-hierarchy.min.js'), 'utf8');
  const out = src.replace(/^(\/\/ ?)https?:\/\//, '$1');
  if (/https?:\/\//i.test(out)) throw new Error('d3-hierarchy.min.js names a URL beyond its license line: check the page still loads nothing');
  return out;
}

/** An inline script or style must not hold what would end its element early (or open an HTML comment inside a script). */
function checkInline(name: string, text: string, end: 'script' | 'style'): string {
  if (new RegExp(`</${end}`, 'i').test(text) || (end === 'script' && text.includes('<!--'))) {
    throw new Error(`${name}: holds "</${end}" or "<!--" and cannot be inlined`);
  }
  return text;
}

function assets(): { css: string; client: string; d3: string } {
  assetCache ??= {
    css: checkInline('report.css', readFileSync(join(ASSETS, 'report.css'), 'utf8'), 'style'),
    client: checkInline('treemap.js', readFileSync(join(ASSETS, 'treemap.js'), 'utf8'), 'script'),
    d3: checkInline('d3-hierarchy.min.js', d3Source(), 'script'),
  };
  return assetCache;
}

/** The data for the client; every '<' as \u003c so no "</script>" or "<!--" in a name can end or bend the block. */
function jsonBlock(input: HtmlReportInput): string {
  return JSON.stringify(input).replace(/</g, '\\u003c');
}

/** Bytes of the 'free' nodes of a tree (not looking inside one). */
function freeBytes(node: SizeNode): number {
  if (node.kind === 'free') return node.bytes;
  return (node.children ?? []).reduce((s, c) => s + freeBytes(c), 0);
}

function treemapSection(which: 'flash' | 'ram', heading: string, root: SizeNode, summary: string): string {
  const label = escapeHtml(`Treemap of ${heading.toLowerCase()}`);
  return `<section id="${which}">
<h2>${escapeHtml(heading)}</h2>
<p class="total">${escapeHtml(summary)}</p>
<div class="treemap" data-tree="${which}" data-testid="treemap-${which}">
<div class="legend"></div>
<div class="crumbs">${escapeHtml(root.name)}</div>
<div class="chart"><svg class="map" width="960" height="520" role="img" aria-label="${label}"></svg></div>
<table class="summary"></table>
</div>
</section>`;
}

/**
 * Lanes of the partition bar: partitions that overlap (OpenWrt's
 * "firmware" spans kernel and rootfs) go on separate rows instead of
 * hiding each other; at one offset the smaller first, so the first row
 * shows the finest split. Lane per partition, in input order.
 */
function laneOf(parts: readonly Partition[]): number[] {
  const order = parts.map((p, i) => ({ p, i })).sort((a, b) => a.p.offset - b.p.offset || a.p.size - b.p.size);
  const ends: number[] = [];
  const lanes = new Array<number>(parts.length).fill(0);
  for (const { p, i } of order) {
    let lane = ends.findIndex((end) => end <= p.offset);
    if (lane < 0) lane = ends.length;
    ends[lane] = p.offset + p.size;
    lanes[i] = lane;
  }
  return lanes;
}

function partitionSection(parts: readonly Partition[], flashBytes: number | undefined): string {
  const chip = Math.max(flashBytes ?? 0, ...parts.map((p) => p.offset + p.size));
  const digits = Math.max(1, (Math.max(chip - 1, 0) >>> 0).toString(16).length);
  const lanes = laneOf(parts);
  const laneH = 38;
  const width = (n: number) => `${((100 * Math.max(0, n)) / chip).toFixed(4)}%`;
  const segs = parts.map((p, i) => {
    const hue = PART_HUES[i % PART_HUES.length]!;
    const used = p.usedBytes === undefined ? undefined : Math.min(p.usedBytes, p.size);
    const tip = [
      `${p.name}: ${hex(p.offset, digits)}-${hex(p.offset + p.size, digits)}, ${human(p.size)} (${group3(p.size)} bytes)`,
      p.content,
      p.readOnly ? 'read-only' : 'read-write',
      used === undefined ? '' : `used ${human(used)} of it (${pct(used, p.size)})`,
    ]
      .filter((s) => s !== '')
      .join('\n');
    const usedDiv = used === undefined ? '' : `<div class="used" style="width:${((100 * used) / Math.max(1, p.size)).toFixed(3)}%;background:hsl(${hue},50%,62%)"></div>`;
    return (
      `<div class="pseg" data-name="${escapeHtml(p.name)}" title="${escapeHtml(tip)}" ` +
      `style="left:${width(p.offset)};width:${width(p.size)};top:${lanes[i]! * laneH}px;background:hsl(${hue},55%,86%)">` +
      `${usedDiv}<span class="plabel"><b>${escapeHtml(p.name)}</b> ${escapeHtml(human(p.size))}</span></div>`
    );
  });
  const nLanes = Math.max(1, ...lanes.map((l) => l + 1));
  const rows = parts.map((p, i) => {
    const hue = PART_HUES[i % PART_HUES.length]!;
    const used = p.usedBytes === undefined ? '-' : `${human(Math.min(p.usedBytes, p.size))} (${pct(Math.min(p.usedBytes, p.size), p.size)})`;
    return (
      `<tr><td><span class="swatch" style="background:hsl(${hue},50%,62%)"></span>${escapeHtml(p.name)}</td>` +
      `<td class="num mono">${hex(p.offset, digits)}</td><td class="num mono">${hex(p.offset + p.size, digits)}</td>` +
      `<td class="num">${escapeHtml(human(p.size))}</td><td class="num">${group3(p.size)}</td>` +
      `<td>${escapeHtml(p.content)}</td><td>${p.readOnly ? 'ro' : 'rw'}</td><td class="num">${escapeHtml(used)}</td></tr>`
    );
  });
  return `<section id="partitions">
<h2>Flash partitions</h2>
<p class="total">The chip: ${escapeHtml(human(chip))} (${group3(chip)} bytes). The darker part of a partition is what the image fills.</p>
<div data-testid="partition-bar">
<div class="pbar" style="height:${nLanes * laneH}px">${segs.join('')}</div>
<div class="paxis"><span>${hex(0, digits)}</span><span class="end">${hex(chip, digits)}</span></div>
</div>
<table class="partitions">
<thead><tr><th>name</th><th class="num">offset</th><th class="num">end</th><th class="num">size</th><th class="num">bytes</th><th>content</th><th>access</th><th class="num">used</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</section>`;
}

/** The line as the kernel prints it, without the cma-reserved part (always 0 here). */
function memoryLine(m: MemoryRow): string {
  return (
    `Memory: ${m.availableKiB}K/${m.totalKiB}K available (${m.kernelCodeKiB}K kernel code, ${m.rwdataKiB}K rwdata, ` +
    `${m.rodataKiB}K rodata, ${m.initKiB}K init, ${m.bssKiB}K bss, ${m.reservedKiB}K reserved)`
  );
}

function memorySection(memory: NonNullable<HtmlReportInput['memory']>): string {
  const head1 = memory.map((m) => `<th colspan="3" class="num">${escapeHtml(human(m.memMiB * (1 << 20)))} RAM</th>`).join('');
  const head2 = memory.map(() => '<th class="num">XIP</th><th class="num">stock</th><th class="num">diff</th>').join('');
  const rows = MEMORY_ROWS.map(([key, label, better]) => {
    const cells = memory.map((m) => {
      const d = m.xip[key] - m.stock[key];
      const cls = better === 'none' || d === 0 ? '' : (d > 0) === (better === 'more') ? ' good' : ' bad';
      return `<td class="num">${group3(m.xip[key])}</td><td class="num">${group3(m.stock[key])}</td><td class="num${cls}">${signed(d)}</td>`;
    });
    return `<tr><td>${escapeHtml(label)}</td>${cells.join('')}</tr>`;
  });
  const lines = memory.flatMap((m) => [
    `${escapeHtml(human(m.memMiB * (1 << 20)))} XIP:   ${escapeHtml(memoryLine(m.xip))}`,
    `${escapeHtml(human(m.memMiB * (1 << 20)))} stock: ${escapeHtml(memoryLine(m.stock))}`,
  ]);
  return `<section id="memory">
<h2>RAM at boot: the kernel's Memory: line</h2>
<table class="memory" data-testid="memory-table">
<thead><tr><th rowspan="2">field (KiB)</th>${head1}</tr><tr>${head2}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p class="hint">The XIP kernel runs its code, read-only data and most of its init code from flash: the line still prints their sizes, but they are not in RAM, so "reserved" is smaller and "available" larger by about that much (diff = XIP &minus; stock).</p>
<details><summary>The lines</summary><pre class="mono">${lines.join('\n')}</pre></details>
</section>`;
}

function benchSection(bench: NonNullable<HtmlReportInput['bench']>): string {
  const rows = bench.map((b) => `<tr><td>${escapeHtml(b.label)}</td><td class="num">${escapeHtml(b.value)}</td></tr>`);
  return `<section id="bench">
<h2>Measurements</h2>
<table class="bench" data-testid="bench-table">
<thead><tr><th>what</th><th class="num">value</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</section>`;
}

function buildMeta(input: HtmlReportInput): string {
  const b = input.size.build;
  const facts = [
    `board ${b.board}`,
    `config ${b.config}`,
    `${b.variant}-${b.toolchain}`,
    b.userspace === undefined ? undefined : `userspace ${b.userspace}`,
    b.kernelVersion === undefined ? undefined : `Linux ${b.kernelVersion}`,
    `generated ${input.generated}`,
  ].filter((s): s is string => s !== undefined);
  return `<p class="meta">${facts.map((f) => `<span>${escapeHtml(f)}</span>`).join('')}</p>
<p class="meta"><code>${escapeHtml(b.dir)}</code></p>`;
}

/** The whole report page for one build. */
export function renderSizeHtml(input: HtmlReportInput): string {
  const a = assets();
  const { flash, ram } = input.size;
  const sections: string[] = [];
  const toc: [string, string][] = [];
  if (flash) {
    const free = freeBytes(flash);
    sections.push(
      treemapSection(
        'flash',
        'Flash',
        flash,
        `${human(flash.bytes)} (${group3(flash.bytes)} bytes): ${human(flash.bytes - free)} used (${pct(flash.bytes - free, flash.bytes)}), ${human(free)} free.`,
      ),
    );
    toc.push(['flash', 'Flash']);
  }
  sections.push(treemapSection('ram', 'RAM', ram, `The kernel's static RAM: ${human(ram.bytes)} (${group3(ram.bytes)} bytes).`));
  toc.push(['ram', 'RAM']);
  if (input.partitions && input.partitions.length > 0) {
    sections.push(partitionSection(input.partitions, flash?.bytes));
    toc.push(['partitions', 'Partitions']);
  }
  if (input.memory && input.memory.length > 0) {
    sections.push(memorySection(input.memory));
    toc.push(['memory', 'Memory: line']);
  }
  if (input.bench && input.bench.length > 0) {
    sections.push(benchSection(input.bench));
    toc.push(['bench', 'Measurements']);
  }
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>
${a.css}
</style>
</head>
<body>
<header>
<h1>${escapeHtml(input.title)}</h1>
${buildMeta(input)}
<nav class="toc">${toc.map(([id, name]) => `<a href="#${id}">${escapeHtml(name)}</a>`).join('')}</nav>
<p class="hint">Click a box to zoom into it; the path above a treemap, its up button or Esc zoom back out. Hover a box for its numbers.</p>
<noscript><p class="hint">The treemaps are drawn by the script in this page: enable JavaScript to see them.</p></noscript>
</header>
${sections.join('\n')}
<script type="application/json" id="xip-data">${jsonBlock(input)}</script>
<script>
${a.d3}
</script>
<script>
${a.client}
</script>
</body>
</html>
`;
}
