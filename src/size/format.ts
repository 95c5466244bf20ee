import { renderTable, thousands } from '../text.ts';
import { buildLabel, type Delta, flashUsedOf, type SizeDiff, type SymbolChanges } from './diff.ts';
import { nodesOf, sumBy, withObject } from './tree.ts';
import type { SizeNode, SizeReport } from './types.ts';

const num = thousands;
const signed = (n: number) => (n > 0 ? `+${num(n)}` : n < 0 ? `-${num(-n)}` : '0');
const kib = (n: number) => (n / 1024).toFixed(1);
const pct = (n: number, of: number) => (of > 0 ? `${((n / of) * 100).toFixed(1)}%` : '-');
const R = ['l', 'r', 'r', 'r'] as const;

/** Nodes of one kind anywhere below the root, summed by name (or keyOf), largest first. */
function collect(root: SizeNode | undefined, kind: SizeNode['kind'], keyOf: (n: SizeNode, path: readonly SizeNode[]) => string = (n) => n.name): { name: string; bytes: number }[] {
  const sums = sumBy(root, (n, path) => (n.kind === kind ? keyOf(n, path) : undefined));
  return [...sums].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
}

function table(title: string, rows: { name: string; bytes: number }[], total: number, top: number): string {
  const shown = rows.slice(0, top);
  const rest = rows.slice(top).reduce((n, r) => n + r.bytes, 0);
  const body = shown.map((r) => [r.name, num(r.bytes), kib(r.bytes), pct(r.bytes, total)]);
  if (rest > 0) body.push([`(${rows.length - top} more)`, num(rest), kib(rest), pct(rest, total)]);
  return `${title}\n${renderTable(['', 'bytes', 'KiB', 'share'], body, { align: R, indent: '  ' })}`;
}

function space(label: string, root: SizeNode, top: number): string[] {
  const total = root.bytes;
  const out = [table(`${label}: regions`, (root.children ?? []).map((c) => ({ name: c.name, bytes: c.bytes })), total, 100)];
  const subs = collect(root, 'subsystem');
  if (subs.length > 0) {
    out.push(table(`${label}: kernel subsystems`, subs, total, top));
    out.push(table(`${label}: object files`, collect(root, 'object'), total, top));
    out.push(table(`${label}: symbols`, collect(root, 'symbol', (n, path) => withObject(n.name, path)), total, top));
  }
  return out;
}

/** `xip size`: regions, subsystems, objects, symbols of flash and RAM, and root filesystem files. */
export function formatSize(r: SizeReport, top = 15): string {
  const out = [`${buildLabel(r)}: ${r.build.dir}`];
  if (r.flash) {
    const used = flashUsedOf(r) ?? 0;
    out.push(`flash: ${num(r.flash.bytes)} bytes, ${num(used)} in use (${pct(used, r.flash.bytes)}), ${num(r.flash.bytes - used)} free`);
    out.push(...space('flash', r.flash, top));
    const fileRows = collect(r.flash, 'file');
    const files = nodesOf(r.flash, 'file');
    if (files.some((x) => x.xipBytes !== undefined)) {
      // A root in flash: what each file keeps in place (executed from flash) against what is compressed.
      const body = files.slice(0, top).map((x) => [x.name, num(x.bytes), num(x.xipBytes ?? 0), num(x.bytes - (x.xipBytes ?? 0))]);
      out.push(`flash: root filesystem files (cramfs)\n${renderTable(['', 'bytes', 'in place', 'compressed + pointers'], body, { align: ['l', 'r', 'r', 'r'], indent: '  ' })}`);
    } else if (fileRows.length > 0) {
      const estimated = JSON.stringify(r.flash).includes('"estimated":true');
      out.push(table(`flash: root filesystem files${estimated ? ' (initramfs shares estimated: one gzip stream)' : ''}`, fileRows, r.flash.bytes, top));
    }
  } else out.push('flash: no flash image (a stock kernel is loaded into RAM)');
  out.push(`RAM: ${num(r.ram.bytes)} bytes of static kernel memory (sections that live in RAM)`);
  out.push(...space('RAM', r.ram, top));
  return out.join('\n\n');
}

function deltaTable(title: string, rows: Delta[], top: number): string | undefined {
  const changed = rows.filter((d) => d.delta !== 0);
  if (changed.length === 0) return undefined;
  const body = changed.slice(0, top).map((d) => [d.name, num(d.a), num(d.b), signed(d.delta)]);
  if (changed.length > top) body.push([`(${changed.length - top} more changed)`, '', '', signed(changed.slice(top).reduce((n, d) => n + d.delta, 0))]);
  return `${title}\n${renderTable(['', 'old', 'new', 'delta'], body, { align: R, indent: '  ' })}`;
}

function symbolSummary(label: string, s: SymbolChanges, top: number): string[] {
  const head = `${label} symbols: add/remove: ${s.added}/${s.removed} grow/shrink: ${s.grown}/${s.shrunk} up/down: ${signed(s.up)}/${signed(s.down)} (${signed(s.up + s.down)})`;
  const rows = [...s.grew.slice(0, top), ...s.shrank.slice(0, top)];
  if (rows.length === 0) return [head];
  return [`${head}\n${renderTable(['', 'old', 'new', 'delta'], rows.map((d) => [d.name, num(d.a), num(d.b), signed(d.delta)]), { align: R, indent: '  ' })}`];
}

/** `xip size --diff A B`, in the manner of bloat-o-meter: totals, then each level down to symbols. */
export function formatDiff(d: SizeDiff, top = 15): string {
  const totals = [d.flashUsed, d.ram].filter((x): x is Delta => x !== undefined);
  const out: (string | undefined)[] = [
    `old: ${d.a}\nnew: ${d.b}`,
    renderTable(['', 'old', 'new', 'delta'], totals.map((t) => [t.name, num(t.a), num(t.b), signed(t.delta)]), { align: R, indent: '  ' }),
    deltaTable('flash regions', d.flashRegions, 100),
    deltaTable('flash by kernel subsystem', d.flashSubsystems, top),
    ...symbolSummary('flash', d.flashSymbols, top),
    deltaTable('root filesystem files', d.files, top),
    deltaTable('RAM sections', d.ramRegions, 100),
    deltaTable('RAM by kernel subsystem', d.ramSubsystems, top),
    ...symbolSummary('RAM', d.ramSymbols, top),
  ];
  return out.filter((x): x is string => x !== undefined).join('\n\n');
}
