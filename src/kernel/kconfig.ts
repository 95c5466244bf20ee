import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildContext, Variant } from '../context.ts';
import { EXIT, XipError, badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { warn } from '../log.ts';
import { run } from '../proc.ts';
import { makeVars } from './kbuild.ts';

/**
 * .config = defconfig + variant fragment + CONFIG_INITRAMFS_SOURCE, then
 * `make olddefconfig` fills in everything else. The variants differ only in
 * CONFIG_XIP_KERNEL; an XIP kernel is linked where the board's flash map
 * (of the chosen loader) puts it: CONFIG_XIP_PHYS_ADDR comes from there,
 * whatever the defconfig says.
 */
export function variantFragment(variant: Variant, xipPhys?: number): string {
  if (variant !== 'xip') return '# CONFIG_XIP_KERNEL is not set\n';
  return `CONFIG_XIP_KERNEL=y\n${xipPhys === undefined ? '' : `CONFIG_XIP_PHYS_ADDR=0x${xipPhys.toString(16)}\n`}`;
}

/** Kconfig string quoting: backslash and double quote are escaped. */
function kconfigString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The text handed to olddefconfig. Later lines override earlier ones. */
export function renderConfigInput(defconfig: string, variant: Variant, initramfsList: string, xipPhys?: number, extra = ''): string {
  const body = defconfig.endsWith('\n') || defconfig === '' ? defconfig : `${defconfig}\n`;
  return (
    body +
    `# --- variant ${variant} (added by xip) ---\n` +
    variantFragment(variant, xipPhys) +
    (extra === '' ? '' : `# --- what the userspace needs (added by xip) ---\n${extra.endsWith('\n') ? extra : `${extra}\n`}`) +
    'CONFIG_BLK_DEV_INITRD=y\n' +
    `CONFIG_INITRAMFS_SOURCE=${kconfigString(initramfsList)}\n`
  );
}

/** `CONFIG_FOO=value` */
const SET_LINE = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
/** `# CONFIG_FOO is not set` */
const UNSET_LINE = /^# CONFIG_([A-Za-z0-9_]+) is not set$/;

/**
 * One line of a Kconfig file (a kernel or busybox .config, a defconfig, a
 * fragment): [FOO, value] for CONFIG_FOO=value, [FOO, 'n'] for
 * "# CONFIG_FOO is not set", undefined for anything else.
 */
export function parseConfigLine(raw: string): [name: string, value: string] | undefined {
  const line = raw.trim();
  const set = SET_LINE.exec(line);
  if (set) return [set[1]!, set[2]!];
  const unset = UNSET_LINE.exec(line);
  return unset ? [unset[1]!, 'n'] : undefined;
}

/**
 * Parse a .config: CONFIG_FOO=value and "# CONFIG_FOO is not set" (as 'n').
 * Keys are without the CONFIG_ prefix; a later line wins, as in Kconfig.
 * The one Kconfig reader of the toolkit: the kernel build, verify and the
 * router's busybox all use it.
 */
export function parseConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const kv = parseConfigLine(line);
    if (kv) m.set(kv[0], kv[1]);
  }
  return m;
}

/** A symbol's value with 'n' for unset (as Kconfig reads a missing symbol). */
export function configValue(config: Map<string, string>, name: string): string {
  return config.get(name.replace(/^CONFIG_/, '')) ?? 'n';
}

/**
 * Apply a fragment (CONFIG_X=... and "# CONFIG_X is not set" lines) to a
 * .config text: each symbol's line is replaced where it is, or appended.
 */
export function mergeConfig(config: string, fragment: string): string {
  const lines = config === '' ? [] : config.replace(/\n$/, '').split('\n');
  const at = new Map<string, number>();
  lines.forEach((l, i) => {
    const kv = parseConfigLine(l);
    if (kv) at.set(kv[0], i);
  });
  for (const line of fragment.split('\n')) {
    const kv = parseConfigLine(line);
    if (!kv) continue;
    const i = at.get(kv[0]);
    if (i === undefined) {
      at.set(kv[0], lines.length);
      lines.push(line.trim());
    } else lines[i] = line.trim();
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** Lines of a fragment whose value is not the final config's (a missing symbol counts as 'n'). */
export function missingFromConfig(final: string, fragment: string): string[] {
  const cfg = parseConfig(final);
  return fragment
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => {
      const kv = parseConfigLine(l);
      return kv !== undefined && configValue(cfg, kv[0]) !== kv[1];
    });
}

/** Symbols asked for in input whose value did not survive into the final config. */
export function droppedSymbols(input: Map<string, string>, final: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of input) {
    const got = configValue(final, k);
    if (got !== v) out.push(`CONFIG_${k}=${v}${final.has(k) ? ` (got ${got})` : ' (unknown or unmet dependency)'}`);
  }
  return out;
}

/** Throws when the final config is not the variant it should be. */
export function checkVariant(final: Map<string, string>, variant: Variant, source: string): void {
  const xip = final.get('XIP_KERNEL') === 'y';
  if (variant === 'xip' && !xip) {
    throw new XipError(
      `CONFIG_XIP_KERNEL=y did not survive olddefconfig: the kernel tree at ${source} has no MIPS XIP support ` +
        '(the kernel/patches/ series adds it); build VARIANT=stock, or add the XIP patches',
      { exitCode: EXIT.failed },
    );
  }
  if (variant === 'stock' && xip) {
    throw new XipError('CONFIG_XIP_KERNEL is still set in the stock variant: something selects it; fix the defconfig');
  }
}

/**
 * A defconfig line that kconfig would misread or silently drop is bad input:
 * one line naming the file, the line number and the fix. Blank lines,
 * comments, CONFIG_FOO=<y|m|n|number|0xhex|"string"> and
 * '# CONFIG_FOO is not set' are the lines a defconfig holds.
 */
export function checkDefconfigText(text: string, file: string): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || UNSET_LINE.test(line)) continue;
    if (line.startsWith('#') && !/^#\s*CONFIG_/.test(line)) continue;
    const m = SET_LINE.exec(line);
    if (!m) {
      throw badInput(
        `${file}:${i + 1}: '${line}' is not a defconfig line (CONFIG_FOO=y, =n, =123, ="text", or '# CONFIG_FOO is not set'): fix or remove it`,
      );
    }
    if (!/^(y|m|n|-?\d+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$/.test(m[2]!)) {
      throw badInput(`${file}:${i + 1}: CONFIG_${m[1]}=${m[2]} is not a Kconfig value (y, m, n, a number, 0x-hex or a "quoted string"): fix it`);
    }
  }
}

export interface ConfigResult {
  changed: boolean;
  dropped: string[];
}

/**
 * Write kbuild/.config for ctx and run olddefconfig. The input text is kept
 * beside it (xip-config.in); when it is unchanged and .config exists,
 * nothing is done, so an unchanged config never triggers a rebuild.
 */
export async function configure(
  ctx: BuildContext,
  srcTree: string,
  defconfigFile: string,
  initramfsList: string,
  extra = '',
): Promise<ConfigResult> {
  const defconfigText = readFileSync(defconfigFile, 'utf8');
  checkDefconfigText(defconfigText, defconfigFile);
  const input = renderConfigInput(defconfigText, ctx.variant, initramfsList, ctx.board.xipPhys, extra);
  const inputPath = join(ctx.kbuildDir, 'xip-config.in');
  const previous = existsSync(inputPath) ? readFileSync(inputPath, 'utf8') : undefined;
  const inputMap = parseConfig(input);
  // The toolchain too: a build directory seeded from a clang build must not keep its .config under LLVM=1.
  const recorded = `# toolchain ${ctx.toolchain}\n${input}`;
  if (previous === recorded && existsSync(ctx.dotConfig)) {
    const final = parseConfig(readFileSync(ctx.dotConfig, 'utf8'));
    checkVariant(final, ctx.variant, srcTree);
    return { changed: false, dropped: droppedSymbols(inputMap, final) };
  }
  writeFileAtomic(ctx.dotConfig, input);
  await run('make', [...makeVars(ctx, srcTree), 'olddefconfig'], {
    log: ctx.kernelLog,
    what: 'make olddefconfig',
  });
  const final = parseConfig(readFileSync(ctx.dotConfig, 'utf8'));
  const dropped = droppedSymbols(inputMap, final);
  checkVariant(final, ctx.variant, srcTree);
  // Record the input only once the config is complete and checked.
  writeFileAtomic(inputPath, recorded);
  for (const d of dropped) {
    if (!/^CONFIG_XIP_/.test(d) || ctx.variant === 'xip') warn(`${ctx.config}: ${d} did not survive olddefconfig`);
  }
  return { changed: true, dropped };
}
