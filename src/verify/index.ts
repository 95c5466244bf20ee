/**
 * `xip verify`: prove from the binaries that the image executes in place.
 * Reads vmlinux (with our ELF32 reader), the kernel .config and the flash
 * image, and checks the six rules of src/verify/rules.ts for the board.
 *
 * Exit codes: 0 every rule holds, 1 a rule fails, 2 unusable input (thrown
 * as a badInput XipError). A missing flash image is not bad input: the
 * stock variant has none, and that makes the image rules (4, 5) fail.
 */
import { readImageReport } from '../image/stage.ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Board } from '../boards/index.ts';
import type { BuildContext } from '../context.ts';
import { readElf } from '../elf/elf32.ts';
import { badInput, XipError } from '../errors.ts';
import { parseConfig } from '../kernel/kconfig.ts';
import { RULES, type RuleInputs, type RuleResult } from './rules.ts';

export { type RuleResult } from './rules.ts';

export interface VerifyInputs {
  board: Board;
  vmlinux: string;
  dotConfig: string;
  /** Flash image; a missing file makes rules 4 and 5 fail. */
  image: string;
}

export interface VerifyReport {
  ok: boolean;
  board: string;
  vmlinux: string;
  dotConfig: string;
  image: string;
  imagePresent: boolean;
  rules: RuleResult[];
  /** Ids of the failing rules. */
  failed: number[];
  /** Wall time of the whole check (reading included), milliseconds. */
  ms: number;
}

/** Images larger than this are not read (a 4 MiB flash image is the norm). */
const MAX_IMAGE_READ = 64 * 1024 * 1024;

function readConfig(path: string): Map<string, string> {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw badInput(`${path}: is a directory, not a kernel .config; pass the file (xip verify --dot-config <file>)`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof XipError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw badInput(`${path}: no such kernel .config; build the kernel first (make kernel) or pass one (xip verify --dot-config <file>)`);
    throw badInput(`${path}: cannot read the kernel .config (${code ?? String(err)}); check the path and its permissions`);
  }
  const cfg = parseConfig(text);
  if (cfg.size === 0) throw badInput(`${path}: no CONFIG_ lines, not a kernel .config; pass the .config of the kernel build (xip verify --dot-config <file>)`);
  return cfg;
}

function readImage(path: string): { bytes: Uint8Array | null; size: number | null } {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw badInput(`${path}: is a directory, not a flash image; pass the image file (xip verify --image <file>)`);
    size = st.size;
  } catch (err) {
    if (err instanceof XipError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { bytes: null, size: null };
    throw badInput(`${path}: cannot read the flash image (${code ?? String(err)}); check the path and its permissions`);
  }
  if (size > MAX_IMAGE_READ) return { bytes: null, size };
  try {
    return { bytes: new Uint8Array(readFileSync(path)), size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badInput(`${path}: cannot read the flash image (${code ?? String(err)}); check the path and its permissions`);
  }
}

/** Run every rule. Throws a badInput XipError (exit 2) for unusable vmlinux or .config. */
export function verify(inputs: VerifyInputs): VerifyReport {
  const t0 = performance.now();
  const elf = readElf(inputs.vmlinux);
  const config = readConfig(inputs.dotConfig);
  const img = readImage(inputs.image);
  const ri: RuleInputs = { board: inputs.board, elf, config, image: img.bytes, imageSize: img.size, imagePath: inputs.image };
  const rules = RULES.map((rule) => rule(ri));
  const failed = rules.filter((r) => !r.ok).map((r) => r.id);
  return {
    ok: failed.length === 0,
    board: inputs.board.name,
    vmlinux: inputs.vmlinux,
    dotConfig: inputs.dotConfig,
    image: inputs.image,
    imagePresent: img.size !== null,
    rules,
    failed,
    ms: Math.round((performance.now() - t0) * 10) / 10,
  };
}

/** Human report: one line per rule (ok / FAIL with the numbers), details under failures, a summary. */
export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  lines.push(`xip verify (${r.board}): ${r.vmlinux}`);
  lines.push(`  config ${r.dotConfig}`);
  lines.push(`  image  ${r.image}${r.imagePresent ? '' : ' (missing)'}`);
  for (const rule of r.rules) {
    lines.push(`rule ${rule.id} ${rule.ok ? 'ok  ' : 'FAIL'} ${rule.title}: ${rule.summary}`);
    if (!rule.ok) for (const d of rule.details) if (d !== rule.summary) lines.push(`       ${d}`);
  }
  const held = r.rules.length - r.failed.length;
  lines.push(
    r.ok
      ? `summary: all ${r.rules.length} rules hold: the image executes in place (${r.ms} ms)`
      : `summary: ${held} of ${r.rules.length} rules hold; FAIL: ${r.failed.map((id) => `rule ${id}`).join(', ')} (${r.ms} ms)`,
  );
  return `${lines.join('\n')}\n`;
}

export interface VerifyCommandOptions {
  vmlinux?: string;
  configFile?: string;
  image?: string;
  json?: boolean;
}

/**
 * The `xip verify` command: inputs from the build context, overridable.
 * Prints the report (or JSON) on stdout and returns the exit code (0 or 1);
 * bad input throws a badInput XipError (exit code 2).
 */
export function verifyCommand(ctx: BuildContext, opts: VerifyCommandOptions = {}): number {
  // A root filesystem in flash splits the kernel partition when the image is built: the build's report has the map
  // as written. It describes the given image when that is the build's own (or a copy of it, e.g. build/out/).
  const sameAsBuilt = opts.image === undefined || (existsSync(opts.image) && existsSync(ctx.imagePath) && readFileSync(opts.image).equals(readFileSync(ctx.imagePath)));
  const built = sameAsBuilt ? readImageReport(ctx) : undefined;
  const report = verify({
    board: built ? { ...ctx.board, partitions: built.partitions } : ctx.board,
    vmlinux: opts.vmlinux ?? ctx.vmlinux,
    dotConfig: opts.configFile ?? ctx.dotConfig,
    image: opts.image ?? ctx.imagePath,
  });
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}
