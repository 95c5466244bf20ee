import { fmtInt, judgeTargets, type Results } from '../measure/index.ts';
import { MEMORY_FIELDS } from '../measure/memory.ts';
import { renderTable } from '../text.ts';

/**
 * Results as text: a terminal table (`xip measure`) and the README's
 * results section (`xip report`). Both are pure functions of the Results
 * object, so the results file alone regenerates them.
 */

/** Rows of the RAM table: every Memory: field but cma-reserved (always 0 here). */
const MEM_FIELDS = MEMORY_FIELDS.filter(([k]) => k !== 'cmaReservedKiB');

function sign(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

function kib(n: number): string {
  return `${n} KiB`;
}

function mib(k: number): string {
  return `${(k / 1024).toFixed(k % 1024 === 0 ? 0 : 4).replace(/0+$/, '').replace(/\.$/, '')} MiB`;
}

/** A markdown table (also readable as plain text): first column left, the rest right unless `align` says. */
export function mdTable(head: string[], rows: (string | number)[][], align?: ('l' | 'r')[]): string {
  return renderTable(head, rows, { markdown: true, align });
}

export function ramTable(r: Results): string | undefined {
  if (!r.ram) return undefined;
  const head = ['field (KiB)'];
  for (const s of r.ram.sizes) head.push(`xip ${s.memMiB}M`, `stock ${s.memMiB}M`, `diff ${s.memMiB}M`);
  const rows = MEM_FIELDS.map(([k, label]) => {
    const row: string[] = [label];
    for (const s of r.ram!.sizes) row.push(String(s.xip[k]), String(s.stock[k]), sign(s.diff[k]));
    return row;
  });
  return mdTable(head, rows);
}

export function minRamTable(r: Results): string | undefined {
  if (!r.minRam) return undefined;
  const rows = (['xip', 'stock'] as const).map((v) => {
    const m = r.minRam![v];
    const a = m.account;
    return [
      v,
      `${kib(m.minKiB)} (${mib(m.minKiB)})`,
      m.below ? `${kib(m.below.kib)}: ${m.below.kind}: ${m.below.line}` : '-',
      a ? `${a.availableKiB}` : '-',
      a ? `${a.reservedKiB}` : '-',
      a ? `${a.belowKernelKiB}` : '-',
      a ? `${a.kernelImageKiB}` : '-',
      a ? `${a.hashTablesKiB}` : '-',
      a ? `${a.otherReservedKiB}` : '-',
    ];
  });
  return mdTable(
    ['variant', 'smallest -m that boots', 'one step less fails with', 'available', 'reserved', 'below kernel', 'kernel RAM image', 'hash tables', 'other reserved'],
    rows,
    ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

export function bootCostTable(r: Results): string | undefined {
  if (!r.bootCost) return undefined;
  const rows = (
    [
      ['xip', 'XIP kernel from flash (-bios image)'],
      ['vmlinux', 'stock vmlinux (-kernel, loaded by QEMU)'],
      ['vmlinuz', 'stock vmlinuz (-kernel, decompresses itself)'],
    ] as const
  ).map(([k, label]) => {
    const runs = r.bootCost![k];
    const f = (pick: (c: (typeof runs)[number]) => number | undefined) => {
      const vals = runs.map(pick).filter((v): v is number => v !== undefined);
      if (vals.length === 0) return '-';
      const same = vals.every((v) => v === vals[0]);
      return same ? fmtInt(vals[0]!) : vals.map(fmtInt).join(' / ');
    };
    return [label, f((c) => c.toStartKernel), f((c) => c.toPid1), f((c) => c.toRunInit), String(runs.length)];
  });
  return mdTable(['kernel', 'reset -> start_kernel', 'reset -> PID 1', 'reset -> run_init_process', 'runs'], rows);
}

export function flashTable(r: Results): string | undefined {
  if (!r.flash) return undefined;
  const b = r.flash.budgetBytes;
  const rows = r.flash.parts.map((p) => [p.name, fmtInt(p.bytes), `${(p.bytes / 1024).toFixed(1)}`, `${((p.bytes / b) * 100).toFixed(1)}%`]);
  rows.push(['image', fmtInt(r.flash.imageBytes), (r.flash.imageBytes / 1024).toFixed(1), `${((r.flash.imageBytes / b) * 100).toFixed(1)}%`]);
  rows.push(['free', fmtInt(r.flash.freeBytes), (r.flash.freeBytes / 1024).toFixed(1), `${((r.flash.freeBytes / b) * 100).toFixed(1)}%`]);
  rows.push(['budget', fmtInt(b), (b / 1024).toFixed(1), '100%']);
  return mdTable(['part', 'bytes', 'KiB', 'of budget'], rows);
}

export function buildTable(r: Results): string | undefined {
  if (!r.build) return undefined;
  return mdTable(
    ['build', 'seconds'],
    [
      [`clean \`make\` (fresh clone, -j${r.build.jobs}, nice 10)`, r.build.cleanSeconds.toFixed(1)],
      ['no-op `make` right after', r.build.noopSeconds.toFixed(1)],
    ],
  );
}

export function targetsTable(r: Results): string {
  const t = judgeTargets(r);
  if (t.length === 0) return '(no target measured)';
  return mdTable(
    ['target', 'met', 'measured'],
    t.map((x) => [x.name, x.met ? 'yes' : 'NO', x.detail]),
    ['l', 'l', 'l'],
  );
}

/** The terminal report of one measurement. */
export function formatResults(r: Results): string {
  const parts: string[] = [
    `xip measure: ${r.config} (${r.board}, ${r.toolchain}, userspace ${r.userspace}), Linux ${r.machine.kernelVersion}, ${r.machine.date}`,
  ];
  const add = (title: string, t: string | undefined) => {
    if (t) parts.push('', title, t);
  };
  add('RAM (the kernel\'s Memory: line)', ramTable(r));
  if (r.ram) {
    const p = r.ram.reservedPerPageBytes;
    parts.push(
      `required gain (XIP text + rodata + init text): ${r.ram.requiredGainKiB} KiB; reserved per 4 KiB page of RAM: xip ${p.xip?.toFixed(1) ?? '?'} B, stock ${p.stock?.toFixed(1) ?? '?'} B`,
    );
  }
  add('Minimum RAM (boots to PID 1 and powers off)', minRamTable(r));
  add('Boot cost (guest instructions)', bootCostTable(r));
  add('Flash', flashTable(r));
  add('Build time', buildTable(r));
  parts.push('', 'Targets', targetsTable(r));
  for (const n of r.notes) parts.push(`note: ${n}`);
  return parts.join('\n');
}
