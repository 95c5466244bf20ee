import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BoardData } from '../boards/board.ts';
import { boardNames, getBoard } from '../boards/index.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { bootCostMethod, fmtInt, type Results } from '../measure/index.ts';
import { hex } from '../text.ts';
import { checkResults } from '../measure/schema.ts';
import { bootCostTable, buildTable, flashTable, minRamTable, ramTable, targetsTable } from './format.ts';

/**
 * `xip report`: the README's results section, generated from the results
 * files under bench/ and written between the markers
 * `<!-- bench:begin -->` and `<!-- bench:end -->` (everything else in the
 * README is left alone). Every results file is read and validated before
 * the README is touched: one bad file and the README stays as it was.
 */
export const BEGIN = '<!-- bench:begin -->';
export const END = '<!-- bench:end -->';

/**
 * A results file, validated against the results schema: anything the README
 * shows comes from data that passed it. A file that does not is refused with
 * one line naming it and its first bad field.
 */
export function readResults(path: string): Results {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw badInput(`${path}: not a results file (${(e as Error).message}); run make bench to write it again`);
  }
  const c = checkResults(data);
  if (c.ok) return c.results;
  if (c.otherVersion) {
    throw badInput(`${path}: not a results file of this version (${c.problem}); run make bench to write it again`);
  }
  throw badInput(`${path}: not a valid results file: ${c.problem}; run make bench to write it again`);
}

/** Every bench/results-*.json, the minimal config first. */
export function findResults(benchDir: string): string[] {
  if (!existsSync(benchDir)) return [];
  return readdirSync(benchDir)
    .filter((f) => /^results-.*\.json$/.test(f))
    .sort((a, b) => (a.startsWith('results-xip_') ? -1 : b.startsWith('results-xip_') ? 1 : a.localeCompare(b)))
    .map((f) => join(benchDir, f));
}

/**
 * The board a results file was measured on: the prose around its numbers
 * (link address, device tree, QEMU machine) comes from the board's data.
 */
function boardOf(r: Results, file: string): BoardData {
  if (!boardNames().includes(r.board)) {
    throw badInput(`${file}: measured on board '${r.board}', which this toolkit does not know (${boardNames().join(', ')})`);
  }
  return getBoard(r.board);
}

/** The source of the board's device tree as its DTB is named after it (malta.dtb -> malta.dts). */
function dtsName(board: BoardData): string {
  return board.deviceTree ? basename(board.deviceTree.dtb).replace(/\.dtb$/, '.dts') : `${board.name}'s device tree`;
}

function spentOn(r: Results, board: BoardData): string[] {
  const out: string[] = [];
  if (!r.minRam) return out;
  const dts = dtsName(board);
  for (const v of ['xip', 'stock'] as const) {
    const m = r.minRam[v];
    const a = m.account;
    if (!a) continue;
    out.push(
      `- ${v} at ${m.minKiB} KiB: ${a.availableKiB} KiB free for the page allocator at mem_init; ${a.reservedKiB} KiB reserved = ` +
        `${a.belowKernelKiB} KiB below the kernel's link address ${hex(board.linkAddress)} (${dts} /memreserve/s it all: YAMON's exception vectors and work area 0-0xf0000, the PIIX4 ISA window 0xf0000-0x100000) + ` +
        `${a.kernelImageKiB} KiB kernel RAM image (${v === 'xip' ? '_sdata.._end: data, init data, bss' : '_text.._end: text, rodata, data, init, bss'}) + ` +
        `${a.hashTablesKiB} KiB early hash tables (dentry, inode) + ${a.otherReservedKiB} KiB other memblock allocations ` +
        `(struct pages, ${r.ram?.reservedPerPageBytes[v]?.toFixed(0) ?? '?'} B per 4 KiB page by the growth of reserved with RAM; page tables, percpu areas, the log buffer, unflattened device tree).`,
    );
  }
  if (out.length > 0) {
    out.push(
      '- The free pages are then taken by the slab caches, page tables, kernel stacks, the unpacked initramfs and PID 1; one 64 KiB step below the minimum memory runs out before the power-off (the table gives the line; the console log of each size is under build/<board>/<config>/measure/).',
      `- Of the first MiB, the XIP boot uses the exception vectors (0-0x1000) and the boot shim's argument page (0x2000); the rest of YAMON's area is reserved only because ${dts} says so.`,
    );
  }
  return out;
}

export function renderConfig(r: Results, file: string): string {
  const m = r.machine;
  const board = boardOf(r, file);
  const parts: string[] = [
    `#### ${r.config} (${r.board}, ${r.toolchain}, userspace \`${r.userspace}\`)`,
    '',
    `Measured ${m.date.slice(0, 10)} on ${m.cpu}, ${m.cores} cores, ${m.memMiB} MiB; ${m.qemu}; ${m.clang}; ${m.gcc}; ${m.binutils}; ` +
      `Linux ${m.kernelVersion}; node ${m.node}; commit ${m.gitCommit}. Every number: [\`${file}\`](${file}).`,
    '',
    '**Targets**',
    '',
    targetsTable(r),
  ];
  const sec = (title: string, body: string | undefined, after: string[] = []) => {
    if (!body) return;
    parts.push('', `**${title}**`, '', body, ...(after.length ? ['', ...after] : []));
  };
  sec('RAM: the kernel\'s `Memory:` line, XIP (flash image, `-bios`) and stock (`-kernel vmlinux`)', ramTable(r), r.ram ? [
    `"kernel code", "rodata" and most of "init" of the XIP kernel are in flash; the line still prints their sizes. The target gain is the XIP kernel's text + rodata + init text: ${r.ram.requiredGainKiB} KiB.`,
  ] : []);
  sec(
    `Minimum RAM: smallest \`-m\` that reaches PID 1 and powers off (bisection, whole MiB then ${r.minRam?.stepKiB ?? 64} KiB)`,
    minRamTable(r),
    r.minRam ? ['Where the RAM goes at the minimum (KiB):', '', ...spentOn(r, board)] : [],
  );
  sec('Boot cost: guest instructions (deterministic; identical over the runs unless two numbers are shown)', bootCostTable(r), r.bootCost ? [
    `XIP from flash against the compressed stock kernel: ${fmtInt(r.bootCost.vmlinuz[0]!.toStartKernel - r.bootCost.xip[0]!.toStartKernel)} fewer instructions to start_kernel` +
      (r.bootCost.xip[0]?.toPid1 !== undefined && r.bootCost.vmlinuz[0]?.toPid1 !== undefined
        ? `, ${fmtInt(r.bootCost.vmlinuz[0]!.toPid1! - r.bootCost.xip[0]!.toPid1!)} fewer to PID 1.`
        : '.'),
  ] : []);
  sec('Flash: the image against the board budget (from the image stage\'s report)', flashTable(r));
  sec('Build time on this machine', buildTable(r));
  for (const n of r.notes) parts.push('', `Note: ${n}`);
  return parts.join('\n');
}

/** How the numbers of results measured on these boards are made. */
function method(boards: readonly BoardData[]): string {
  const machines = [...new Set(boards.flatMap((b) => (b.qemu ? [b.qemu.machine] : [])))].join(', ') || "the board's machine";
  return [
    '#### How the numbers are made',
    '',
    `- RAM: each variant boots in QEMU ${machines} at each size; the fields come from the kernel's \`Memory:\` line. The XIP kernel boots from its flash image (\`-bios\`), the stock kernel of the same config with \`-kernel vmlinux\`.`,
    '- Minimum RAM: a boot counts when every console marker of the userspace profile appears and QEMU exits 0 through the guest\'s power-off. The failure shown is the runner\'s verdict on the size one step below (panic line, hang = timeout, or QEMU\'s own exit).',
    `- Boot cost: ${bootCostMethod(boards)}`,
    '- What QEMU does not model: flash read latency and the speed of code executing from SPI-NOR (every XIP instruction fetch that misses the cache goes to flash on real hardware), caches at all (an instruction costs the same wherever it runs), and the bootloader\'s copy of a non-XIP kernel from flash to RAM (QEMU places vmlinux/vmlinuz in RAM for free; a router\'s U-Boot copies 1-3 MB from flash first). Instruction counts therefore compare the work done, not wall time on a device.',
    '- Build time: `make` in a fresh clone under /tmp with its own build directory (kernel source unpacked and patched, userspace, kernel, flash image), then `make` again with nothing changed. Wall time at nice 10 with -j2; other jobs may share the cores, so a clean build can take longer than on an idle machine.',
    '',
    'Regenerate with `make bench` (`BENCH_BUILD_TIME=0` skips the slow build timing); `node bin/xip.mjs report` rewrites this section from `bench/results-*.json`.',
  ].join('\n');
}

/** The whole generated section (without the markers). */
export function renderSection(results: { r: Results; file: string }[], missing: string[] = []): string {
  const parts = ['### Results', '', '_Generated by `xip report` from the results files; do not edit by hand._'];
  for (const x of results) parts.push('', renderConfig(x.r, x.file));
  for (const m of missing) parts.push('', `Not measured: ${m}`);
  parts.push('', method(results.map((x) => boardOf(x.r, x.file))));
  return parts.join('\n');
}

/** Replace the text between the markers; throws when they are missing or out of order. */
export function replaceBlock(readme: string, body: string): string {
  const b = readme.indexOf(BEGIN);
  const e = readme.indexOf(END);
  if (b < 0 || e < 0 || e < b || readme.indexOf(BEGIN, b + 1) >= 0) {
    throw badInput(`README.md: needs exactly one '${BEGIN}' followed by '${END}' around the results section`);
  }
  return `${readme.slice(0, b + BEGIN.length)}\n${body}\n${readme.slice(e)}`;
}

export function updateReadme(repo: string, o: { missing?: string[] } = {}): { path: string; changed: boolean; files: string[] } {
  const files = findResults(join(repo, 'bench'));
  if (files.length === 0) throw badInput('no bench/results-*.json: run make bench first');
  const results = files.map((f) => ({ r: readResults(f), file: f.slice(repo.length + 1) }));
  const path = join(repo, 'README.md');
  const old = readFileSync(path, 'utf8');
  const next = replaceBlock(old, renderSection(results, o.missing));
  if (next !== old) writeFileAtomic(path, next);
  return { path, changed: next !== old, files };
}
