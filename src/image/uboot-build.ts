import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Board } from '../boards/index.ts';
import { badInput, XipError } from '../errors.ts';
import { parseJsonText, sha256, writeFileAtomic } from '../fsutil.ts';
import { jobs } from '../kernel/kbuild.ts';
import { parseConfig } from '../kernel/kconfig.ts';
import { capture, run } from '../proc.ts';
import { fetchSource } from '../userspace/busybox.ts';

/**
 * U-Boot built from Debian's own source package (bookworm, the same pin on
 * Debian 12 and 13 hosts, like busybox and musl): `apt-get source
 * --download-only` with every file's sha256 pinned, `dpkg-source -x`
 * (Debian's patches), then firmware/u-boot/patches/ and the config changes
 * of the board's recipe file, built with SOURCE_DATE_EPOCH so u-boot.bin is
 * reproducible. Cached under build/uboot/<defconfig>-<key>/, keyed by
 * everything that goes into it.
 */
const RecipeSchema = z.object({
  comment: z.string().optional(),
  source: z.object({
    package: z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/),
    version: z.string().regex(/^[0-9A-Za-z.+~:-]+$/),
    files: z.record(z.string().regex(/^[A-Za-z0-9_.+~-]+$/), z.string().regex(/^[0-9a-f]{64}$/)),
  }),
  defconfig: z.string().regex(/^[A-Za-z0-9_]+_defconfig$/),
  /** Kconfig symbols (without CONFIG_) and their values; 'n' unsets. */
  config: z.record(z.string().regex(/^[A-Z0-9_]+$/), z.string()),
  sourceDateEpoch: z.number().int().positive(),
});
export type UbootRecipe = z.infer<typeof RecipeSchema>;

/** Bump when the build steps change in a way the key does not see. */
const RECIPE_VERSION = 1;

export function recipePath(repo: string, board: Board): string {
  if (!board.uboot) throw badInput(`board ${board.name} names no U-Boot: use --loader shim`);
  return join(repo, board.uboot.recipe);
}

export function patchesOf(repo: string): string[] {
  const dir = join(repo, 'firmware', 'u-boot', 'patches');
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => n.endsWith('.patch'))
        .sort()
        .map((n) => join(dir, n))
    : [];
}

export function readRecipe(file: string): UbootRecipe {
  if (!existsSync(file)) throw badInput(`${file} not found: LOADER=uboot needs its U-Boot recipe`);
  const recipe = parseJsonText(RecipeSchema, readFileSync(file, 'utf8'), file);
  if (Object.keys(recipe.source.files).filter((f) => f.endsWith('.dsc')).length !== 1) throw badInput(`${file}: source.files must list exactly one .dsc file`);
  return recipe;
}

/** The .config lines that carry the recipe's settings (later lines win in olddefconfig). */
export function configLines(config: Record<string, string>): string {
  return Object.entries(config)
    .map(([k, v]) => (v === 'n' ? `# CONFIG_${k} is not set` : `CONFIG_${k}=${v}`))
    .join('\n');
}

export interface UbootBuild {
  bin: string;
  version: string;
  key: string;
}

/** Build (or reuse) the board's U-Boot from source; returns u-boot.bin. */
export async function buildUboot(repo: string, board: Board, buildDir: string): Promise<UbootBuild> {
  const file = recipePath(repo, board);
  const recipe = readRecipe(file);
  const patches = patchesOf(repo);
  // The cross compiler's identity too: another gcc makes another u-boot.bin.
  const cc = capture(`${board.crossCompile}gcc`, ['--version'], { what: 'the cross compiler U-Boot is built with' }).split('\n')[0];
  const key = sha256(
    JSON.stringify([RECIPE_VERSION, recipe.source, recipe.defconfig, recipe.config, recipe.sourceDateEpoch, board.crossCompile, cc, patches.map((p) => readFileSync(p, 'utf8'))]),
  ).slice(0, 16);
  const root = join(buildDir, 'uboot');
  const out = join(root, `${recipe.defconfig.replace(/_defconfig$/, '')}-${key}`);
  const bin = join(out, 'u-boot.bin');
  const done = { bin, version: recipe.source.version, key };
  if (existsSync(bin)) return done;
  const downloads = join(root, 'downloads');
  const tmp = `${out}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const log = join(tmp, 'build.log');
  try {
    await fetchSource(recipe.source, downloads, file, log);
    const dsc = Object.keys(recipe.source.files).find((f) => f.endsWith('.dsc'))!;
    const src = join(tmp, 'src');
    await run('dpkg-source', ['--no-check', '-x', join(downloads, dsc), src], { log, what: `dpkg-source -x ${dsc}` });
    for (const p of patches) {
      await run('patch', ['-p1', '--forward', '--batch', '-d', src, '-i', p], { log, what: `patch ${p.slice(repo.length + 1)}` });
    }
    const obj = join(tmp, 'obj');
    const env = { ...process.env, SOURCE_DATE_EPOCH: String(recipe.sourceDateEpoch), LC_ALL: 'C' };
    const make = (args: string[], what: string) => run('make', ['-C', src, `O=${obj}`, `CROSS_COMPILE=${board.crossCompile}`, ...args], { log, env, what });
    await make([recipe.defconfig], `U-Boot ${recipe.defconfig}`);
    const cfg = join(obj, '.config');
    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}\n# --- ${file} (added by xip) ---\n${configLines(recipe.config)}\n`);
    await make(['olddefconfig'], 'U-Boot olddefconfig');
    const final = parseConfig(readFileSync(cfg, 'utf8'));
    for (const [k, v] of Object.entries(recipe.config)) {
      const got = final.get(k) ?? 'n';
      if (got !== v) throw new XipError(`U-Boot: CONFIG_${k}=${v} from ${file} did not survive olddefconfig (got ${got}): fix the recipe`);
    }
    await make([`-j${jobs()}`, 'u-boot.bin'], 'U-Boot build');
    writeFileAtomic(join(tmp, 'u-boot.bin'), readFileSync(join(obj, 'u-boot.bin')));
    writeFileAtomic(join(tmp, 'recipe.json'), `${JSON.stringify({ recipe, patches: patches.map((p) => p.slice(repo.length + 1)), key }, null, 2)}\n`);
    // Keep the log and the binary; the tree is large and rebuilt only when the key changes.
    rmSync(src, { recursive: true, force: true });
    rmSync(obj, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (e) {
    if (e instanceof XipError && existsSync(log)) {
      const saved = join(root, 'last-failed-build.log');
      mkdirSync(root, { recursive: true });
      writeFileAtomic(saved, readFileSync(log));
      rmSync(tmp, { recursive: true, force: true });
      throw new XipError(`${e.message} (log: ${saved})`, { exitCode: e.exitCode, details: e.details });
    }
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return done;
}

