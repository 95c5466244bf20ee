/**
 * Plain-text formatting that several commands share: hex numbers and
 * tables (doctor's tool table, the image layout map, the measurement and
 * README tables). A leaf module: it imports nothing of the toolkit.
 */

/** An unsigned 32-bit number in hex, `0x` first; `digits` pads it with zeros (8: a whole word). */
export function hex(n: number, digits = 0): string {
  return `0x${(n >>> 0).toString(16).padStart(digits, '0')}`;
}

/** A whole number with thousands separators: 2,725,980. */
export function thousands(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export type Align = 'l' | 'r';

export interface TableStyle {
  /** A markdown table (`| a | b |` with a separator row), else plain columns. */
  markdown?: boolean;
  /** Per column; default: markdown first column left and the rest right, plain all left. */
  align?: readonly Align[];
  /** The narrowest a column gets (default: markdown 3, the separator's least, plain 0). */
  minWidths?: readonly number[];
  /** Plain tables: in front of every line (default none). */
  indent?: string;
  /** Plain tables: between columns (default two spaces). */
  gap?: string;
}

/**
 * A table: every column as wide as its widest cell. Plain lines carry no
 * trailing blanks; a markdown table is also readable as plain text.
 */
export function renderTable(head: readonly string[], rows: readonly (readonly (string | number)[])[], style: TableStyle = {}): string {
  const md = style.markdown === true;
  const cells = [head.map(String), ...rows.map((r) => r.map(String))];
  const align = (i: number): Align => style.align?.[i] ?? (md && i > 0 ? 'r' : 'l');
  const widths = head.map((_, i) => Math.max(style.minWidths?.[i] ?? (md ? 3 : 0), ...cells.map((r) => (r[i] ?? '').length)));
  const pad = (c: string, i: number) => (align(i) === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!));
  if (md) {
    const line = (r: string[]) => `| ${r.map(pad).join(' | ')} |`;
    const sep = `| ${widths.map((n, i) => (align(i) === 'r' ? `${'-'.repeat(n - 1)}:` : '-'.repeat(n))).join(' | ')} |`;
    return [line(cells[0]!), sep, ...cells.slice(1).map(line)].join('\n');
  }
  const line = (r: string[]) => `${style.indent ?? ''}${r.map(pad).join(style.gap ?? '  ')}`.trimEnd();
  return cells.map(line).join('\n');
}
