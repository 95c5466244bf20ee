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
 * CONFIG_XIP_KERNEL.
 */
export function variantFragment(variant: Variant): string {
  return variant === 'xip' ? 'CONFIG_XIP_KERNEL=y\n' : '# CONFIG_XIP_KERNEL is not set\n';
}

/** Kconfig string quoting: backslash and double quote are escaped. */
function kconfigString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The text handed to olddefconfig. Later lines override earlier ones. */
export function renderConfigInput(defconfig: string, variant: Variant, initramfsList: string): string {
  const body = defconfig.endsWith('\n') || defconfig === '' ? defconfig : `${defconfig}\n`;
  return (
    body +
    `# --- variant ${variant} (added by xip) ---\n` +
    variantFragment(variant) +
    'CONFIG_BLK_DEV_INITRD=y\n' +
    `CONFIG_INITRAMFS_SOURCE=${kconfigString(initramfsList)}\n`
  );
}

/**
 * Parse a .config: CONFIG_FOO=value and "# CONFIG_FOO is not set" (as 'n').
 * Keys are without the CONFIG_ prefix.
 */
export function parseConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set?.[1] !== undefined && set[2] !== undefined) {
      m.set(set[1], set[2]);
      continue;
    }
    const unset = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset?.[1] !== undefined) m.set(unset[1], 'n');
  }
  return m;
}

/** Symbols asked for in input whose value did not survive into the final config. */
export function droppedSymbols(input: Map<string, string>, final: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of input) {
    const got = final.get(k) ?? 'n';
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
    if (line === '' || /^# CONFIG_[A-Za-z0-9_]+ is not set$/.test(line)) continue;
    if (line.startsWith('#') && !/^#\s*CONFIG_/.test(line)) continue;
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
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
): Promise<ConfigResult> {
  const defconfigText = readFileSync(defconfigFile, 'utf8');
  checkDefconfigText(defconfigText, defconfigFile);
  const input = renderConfigInput(defconfigText, ctx.variant, initramfsList);
  const inputPath = join(ctx.kbuildDir, 'xip-config.in');
  const previous = existsSync(inputPath) ? readFileSync(inputPath, 'utf8') : undefined;
  const inputMap = parseConfig(input);
  if (previous === input && existsSync(ctx.dotConfig)) {
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
  writeFileAtomic(inputPath, input);
  for (const d of dropped) {
    if (!/^CONFIG_XIP_/.test(d) || ctx.variant === 'xip') warn(`${ctx.config}: ${d} did not survive olddefconfig`);
  }
  return { changed: true, dropped };
}
