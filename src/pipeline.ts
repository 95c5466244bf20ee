import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { defaultUserspace, defconfigPath, makeContext, userspacePaths, type BuildContext, type Toolchain, type Variant } from './context.ts';
import { badInput, EXIT, XipError } from './errors.ts';
import { checkXipText } from './kernel/xiptext.ts';
import { writeFileAtomic } from './fsutil.ts';
import { info } from './log.ts';
import { configure } from './kernel/kconfig.ts';
import { kernelOutputs, makeKernel } from './kernel/kbuild.ts';
import { readSeries } from './kernel/patch.ts';
import {
  originHash,
  prepareSource,
  readSourceInfo,
  resolveSourceSpec,
  sourcePaths,
  type SourceInfo,
  type SourceOptions,
} from './kernel/source.ts';
import type { ImageReport } from './image/index.ts';
import { imageStage } from './image/stage.ts';
import { boot, type BootResult, type DialogStep } from './qemu/runner.ts';
import { defaultLoader, type Board } from './boards/board.ts';
import { kernelCmdline, ubootKernelAddress } from './boards/flashmap.ts';
import { HashCache, readStamp, runStage, type StageOutcome } from './stamp.ts';
import { run } from './proc.ts';
import { bootExpectation, checkFlashRootLoader, getProfile, profileNames, type BootSession } from './userspace/profiles.ts';
import { listedFiles, writeInitramfsList } from './userspace/initramfs.ts';
import { FLASH_ROOT_KCONFIG, rootfsImagePath } from './userspace/flashroot.ts';

/**
 * The build as stages, each skipped when its stamp (content hash of its
 * inputs) matches and its outputs exist. The toolkit's own code (src/ and
 * package-lock.json) is an input of every stage (runStage adds it), so the
 * stages below list only their other inputs:
 *
 *   source (build/src/linux, shared) -> userspace (init, initramfs list)
 *     -> kernel (.config + make, per variant/toolchain) -> image (xip only, src/image/stage.ts)
 */
export interface BuildOptions extends SourceOptions {
  /** Run every stage even when up to date. */
  force?: boolean;
}

export function hashCache(ctx: BuildContext): HashCache {
  return new HashCache(join(ctx.buildDir, '.xip-hashcache.json'));
}

export function stampPath(ctx: BuildContext, stage: string): string {
  return join(ctx.variantDir, 'stamps', `${stage}.json`);
}

export function patchesDir(ctx: BuildContext): string {
  return join(ctx.repo, 'kernel', 'patches');
}

export { userspacePaths } from './context.ts';

/** Stage 1: the prepared (unpacked + patched) kernel tree under build/src. */
export async function sourceStage(ctx: BuildContext, o: BuildOptions, cache = hashCache(ctx)): Promise<SourceInfo> {
  const spec = resolveSourceSpec(o);
  const paths = sourcePaths(ctx.buildDir);
  const series = readSeries(patchesDir(ctx));
  await runStage({
    name: 'source',
    stampPath: paths.stamp,
    cache,
    force: o.force,
    inputs: (h) => {
      // Only the source's identity and the series: not where it lives, so
      // the same tarball under another name is not unpacked again.
      h.value('kind', spec.kind);
      // originHash also checks that the source can be read (clear errors).
      h.value('origin', originHash(spec, cache));
      if (spec.kind === 'tarball') h.value('sha256-expected', spec.sha256 ?? '');
      for (const p of series) h.value(`patch ${p.name}`, p.sha256);
    },
    outputs: [join(paths.tree, 'Makefile'), paths.info],
    run: async (s) => {
      const inf = await prepareSource({
        spec,
        buildDir: ctx.buildDir,
        series,
        cache,
        log: join(paths.root, 'prepare.log'),
        onProgress: (t) => s.update(t),
      });
      return `Linux ${inf.version}, ${series.length} patch(es)`;
    },
  });
  const inf = readSourceInfo(ctx.buildDir);
  if (!inf) throw new Error('internal: source stage finished without source.json');
  return inf;
}

/** Stage 2: PID 1 and the gen_init_cpio list that embeds it. */
export async function userspaceStage(ctx: BuildContext, o: BuildOptions = {}, cache = hashCache(ctx)): Promise<StageOutcome> {
  const u = userspacePaths(ctx);
  const profile = getProfile(ctx.userspace);
  return runStage({
    name: `userspace ${basename(ctx.variantDir)}`,
    stampPath: stampPath(ctx, 'userspace'),
    cache,
    force: o.force,
    inputs: (h) => {
      h.value('profile', profile.name);
      profile.inputs(h, ctx);
    },
    outputs: profile.flashRootfs ? [u.list, rootfsImagePath(u.dir)] : [u.list],
    run: async () => {
      mkdirSync(u.dir, { recursive: true });
      writeInitramfsList(u.list, await profile.build(ctx, u.dir));
    },
  });
}

/** Kernel options the build's userspace needs on top of the defconfig (a root filesystem in flash). */
export function kconfigExtra(ctx: BuildContext): string {
  const p = getProfile(ctx.userspace);
  const board = (ctx.board.kconfig ?? []).map((l) => `${l}\n`).join('');
  return board + (p.flashRootfs ? FLASH_ROOT_KCONFIG : '') + (p.kconfig ?? '');
}

/** Stage 3: .config (defconfig + variant + extra options + initramfs) and make. */
export async function kernelStage(
  ctx: BuildContext,
  src: SourceInfo,
  o: BuildOptions = {},
  cache = hashCache(ctx),
): Promise<StageOutcome> {
  const u = userspacePaths(ctx);
  const tree = sourcePaths(ctx.buildDir).tree;
  const defconfig = defconfigPath(ctx);
  const originFile = join(ctx.kbuildDir, '.xip-origin');
  return runStage({
    name: `kernel ${basename(ctx.variantDir)}`,
    stampPath: stampPath(ctx, 'kernel'),
    cache,
    force: o.force,
    inputs: (h) => {
      h.value('origin', src.originHash);
      h.value('series', JSON.stringify(src.series));
      h.value('variant', ctx.variant);
      h.value('toolchain', ctx.toolchain);
      h.value('board', JSON.stringify(ctx.board));
      h.file('defconfig', defconfig);
      h.value('kconfig-extra', kconfigExtra(ctx));
      h.file('initramfs.list', u.list);
      // The kernel embeds the files the list names: their contents are inputs too.
      for (const f of listedFiles(existsSync(u.list) ? readFileSync(u.list, 'utf8') : '')) h.file(f, f);
    },
    outputs: kernelOutputs(ctx),
    run: async (s) => {
      // Another kernel source (not just another series): its files carry
      // their own old mtimes, so make could keep stale objects. Start clean.
      if (existsSync(originFile) && readFileSync(originFile, 'utf8').trim() !== src.originHash) {
        s.update('kernel source changed: cleaning the build directory');
        rmSync(ctx.kbuildDir, { recursive: true, force: true });
      }
      const seed = await seedKbuild(ctx, src.originHash);
      if (seed) s.update(`seeded from ${seed}: rebuilding what differs, relinking`);
      mkdirSync(ctx.kbuildDir, { recursive: true });
      // The stamp is gone while this runs; the outputs go too, so a build
      // that is interrupted or fails leaves no vmlinux that the next make
      // could take as up to date (it relinks).
      for (const out of kernelOutputs(ctx)) if (out !== ctx.dotConfig) rmSync(out, { force: true });
      writeFileSync(ctx.kernelLog, '');
      s.update('configuring');
      await configure(ctx, tree, defconfig, u.list, kconfigExtra(ctx));
      await makeKernel(ctx, tree, (t) => s.update(t));
      checkXipAwareCode(ctx, tree);
      writeFileAtomic(originFile, `${src.originHash}\n`);
      writeFileAtomic(
        join(ctx.variantDir, 'build-info.json'),
        `${JSON.stringify(
          {
            kernelVersion: src.version,
            source: src.origin,
            series: src.series.map((p) => p.name),
            board: ctx.board.name,
            config: ctx.config,
            variant: ctx.variant,
            toolchain: ctx.toolchain,
            vmlinux: ctx.vmlinux,
            built: new Date().toISOString(),
          },
          null,
          2,
        )}\n`,
      );
      return `Linux ${src.version}, log ${ctx.kernelLog}`;
    },
  });
}

/**
 * An XIP kernel with MTD_XIP: its flash write path runs from RAM and must
 * call nothing in flash while the chip is busy. A helper the compiler
 * emitted out of line into flash would hang the first flash command on the
 * board; refuse the build instead (src/kernel/xiptext.ts).
 */
function checkXipAwareCode(ctx: BuildContext, tree: string): void {
  const cfg = readFileSync(ctx.dotConfig, 'utf8');
  if (!/^CONFIG_XIP_KERNEL=y$/m.test(cfg) || !/^CONFIG_MTD_XIP=y$/m.test(cfg)) return;
  const r = checkXipText(ctx.kbuildDir, tree);
  if (r.outlined.length === 0) return;
  const list = r.outlined.map((o) => `${o.object}: ${o.fn}()`).join(', ');
  throw new XipError(`kernel ${basename(ctx.variantDir)}: the XIP-aware MTD code (in RAM) calls helpers the ${ctx.toolchain} compiler emitted out of line into flash (${list}): the first flash command would hang the kernel; force them inline (__always_inline, as series patches 15 and 16 do for others) or use another toolchain`, { exitCode: EXIT.failed });
}

/**
 * A kernel build starts its kbuild directory as a copy (mtimes kept) of a
 * finished build of the same board, config, variant and toolchain with the
 * default loader, when there is one: first the same profile's, then one whose kernel config is the
 * same (another root-in-flash profile's, for a root-in-flash profile), then
 * the default profile's, then any other profile's. Kbuild records which
 * options each object depends on, so make then rebuilds only the initramfs
 * and the objects of the options that differ (the root-in-flash MTD and
 * cramfs code, CONFIG_XIP_PHYS_ADDR for another loader), and relinks: the
 * test suite's router kernel, built after the root-in-flash ones, is a
 * relink instead of a full build. Failing those, a build of the same
 * compiler under the other toolchain name (clang with GNU ld for LLVM=1,
 * and back: the same compile commands, so only the link and the few objects
 * of the linker's options are redone), then one of the other variant (xip
 * for stock and back: about half the objects depend on CONFIG_XIP_KERNEL).
 * Never across compilers (gcc, clang): every object would be rebuilt.
 * Only a finished build (kernel stamp present, same kernel source)
 * is copied; the copy goes to a temporary name and is renamed into place,
 * and it is dropped if that build changed while it was copied.
 */
export async function seedKbuild(ctx: BuildContext, originHash: string): Promise<string | undefined> {
  if (existsSync(ctx.kbuildDir)) return undefined;
  // A profile with the very same kernel options (root in flash or not, the same extra Kconfig lines): a relink at most. Else the default profile's, else any.
  const sameKernel = (n: string) => {
    const p = getProfile(n);
    const me = getProfile(ctx.userspace);
    return (p.flashRootfs !== undefined) === (me.flashRootfs !== undefined) && (p.kconfig ?? '') === (me.kconfig ?? '');
  };
  const siblings = profileNames().filter(sameKernel);
  // The same profile first (its default-loader build, or its build of the other toolchain name or variant).
  const order = [...new Set([ctx.userspace, ...siblings, defaultUserspace(ctx.board, ctx.config), ...profileNames()])];
  const sameCompiler: Toolchain | undefined = ctx.toolchain === 'clang' ? 'llvm' : ctx.toolchain === 'llvm' ? 'clang' : undefined;
  const otherVariant: Variant = ctx.variant === 'xip' ? 'stock' : 'xip';
  const bases: Array<{ variant: Variant; toolchain: Toolchain; userspace: string }> = [
    ...order.map((userspace) => ({ variant: ctx.variant, toolchain: ctx.toolchain, userspace })),
    ...(sameCompiler ? order.map((userspace) => ({ variant: ctx.variant, toolchain: sameCompiler, userspace })) : []),
    ...order.map((userspace) => ({ variant: otherVariant, toolchain: ctx.toolchain, userspace })),
  ];
  for (const b of bases) {
    const base = makeContext({ board: ctx.board.name, config: ctx.config, ...b, loader: defaultLoader(ctx.board), buildDir: ctx.buildDir });
    if (base.variantDir !== ctx.variantDir && (await seedFrom(ctx, base, originHash))) return basename(base.variantDir);
  }
  return undefined;
}

async function seedFrom(ctx: BuildContext, base: BuildContext, originHash: string): Promise<boolean> {
  const stamp = stampPath(base, 'kernel');
  const before = readStamp(stamp);
  const originFile = join(base.kbuildDir, '.xip-origin');
  if (!before || !existsSync(base.vmlinux) || !existsSync(originFile)) return false;
  if (readFileSync(originFile, 'utf8').trim() !== originHash) return false;
  const tmp = `${ctx.kbuildDir}.seed.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(ctx.variantDir, { recursive: true });
  try {
    await run('cp', ['-a', base.kbuildDir, tmp], { what: `copy of ${base.kbuildDir}` });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (readStamp(stamp)?.written !== before.written) {
    rmSync(tmp, { recursive: true, force: true });
    return false;
  }
  renameSync(tmp, ctx.kbuildDir);
  return true;
}

export interface BuildResult {
  source: SourceInfo;
  vmlinux: string;
}

/** source -> userspace -> kernel for ctx. */
export async function build(ctx: BuildContext, o: BuildOptions = {}): Promise<BuildResult> {
  // A missing defconfig is refused before any work (not after unpacking the source).
  defconfigPath(ctx);
  checkFlashRootLoader(ctx);
  const cache = hashCache(ctx);
  const source = await sourceStage(ctx, o, cache);
  await userspaceStage(ctx, o, cache);
  await kernelStage(ctx, source, o, cache);
  cache.save();
  info(`vmlinux: ${ctx.vmlinux}`);
  return { source, vmlinux: ctx.vmlinux };
}

export interface BootBuiltOptions {
  memMiB: number;
  /** RAM in KiB instead of MiB (minimum-RAM searches). */
  memKiB?: number;
  timeoutMs?: number;
  interactive?: boolean;
  /** Console log (default: the build's boot.log). */
  log?: string;
  /** More QEMU arguments (e.g. a QMP socket). */
  extraArgs?: string[];
  /**
   * The host side of this boot instead of the profile's own (the router
   * test's also fetches the status page); closed when the boot has ended.
   */
  session?: BootSession;
  /** Run QEMU in this network namespace (ip netns exec): the end-to-end network test's taps live there. */
  netns?: string;
  /** Boot this copy of the build's flash image instead (shim loader: a test's changed settings). */
  image?: string;
  /** Text to type at the console once some text has appeared (shim loader; the router's shell). */
  dialog?: DialogStep[];
}

/**
 * Boot what was built for ctx: the stock vmlinux with -kernel, the xip
 * variant only from its flash image: -bios with the shim, or, with U-Boot,
 * a copy of the image as the CFI chip (-drive if=pflash) and a lab script
 * at U-Boot's prompt (ubootDialog). The one way every command
 * boots a build (`xip boot`, `xip run`, measure, soak, the router test):
 * the profile's markers and timeout, and its host-side session, which the
 * runner streams the console to.
 */
export async function bootBuilt(ctx: BuildContext, o: BootBuiltOptions): Promise<BootResult> {
  const expect = bootExpectation(ctx.userspace);
  const file = ctx.variant === 'stock' ? ctx.vmlinux : (o.image ?? ctx.imagePath);
  if (o.image !== undefined && (ctx.variant === 'stock' || ctx.board.loader !== 'shim')) throw badInput('boot: another flash image is for the xip variant with the shim loader');
  if (!existsSync(file)) {
    const how = ctx.variant === 'stock' ? `xip build --variant stock (make kernel VARIANT=stock)` : 'xip build && xip image (make)';
    throw badInput(`${file} not found: build it first with ${how}`);
  }
  // The profile's host side (router: its NIC, and a power-off request once it is up);
  // an interactive run gets the NIC but leaves the guest running for the user.
  let pflash: string | undefined;
  let dialog: DialogStep[] | undefined = o.dialog;
  if (o.dialog !== undefined && ctx.board.loader !== 'shim') throw badInput('boot: a console dialog is for the shim loader (U-Boot has its own)');
  const markers = [...expect.markers];
  if (ctx.variant === 'xip' && ctx.board.loader !== 'shim') {
    const need = ctx.board.uboot?.stock?.memMiB;
    if (ctx.board.loader === 'uboot-stock' && need !== undefined && (o.memMiB !== need || o.memKiB !== undefined)) {
      throw badInput(`the stock U-Boot on ${ctx.board.name} needs ${need} MiB of RAM (it assumes that much; with less it hangs): boot with --mem ${need}, or build with LOADER=uboot (from source, probes RAM) or LOADER=shim`);
    }
    // A copy per boot: what the guest writes to its flash stays in the copy, not in the build.
    pflash = join(ctx.variantDir, 'flash-run.bin');
    copyFileSync(ctx.imagePath, `${pflash}.${process.pid}.tmp`);
    renameSync(`${pflash}.${process.pid}.tmp`, pflash);
    if (ctx.board.loader === 'uboot-stock') {
      dialog = ubootDialog(ctx.board, o.memMiB);
      markers.unshift(...UBOOT_MARKERS);
    } else markers.unshift(UBOOT_MARKERS[0], 'Hit any key to stop autoboot', UBOOT_MARKERS[1]);
  }
  const session = o.session ?? (await expect.bootSession?.(ctx));
  try {
    return await boot({
      board: ctx.board,
      variant: ctx.variant,
      kernel: ctx.variant === 'stock' ? ctx.vmlinux : undefined,
      bios: ctx.variant === 'stock' || pflash !== undefined ? undefined : file,
      pflash,
      dialog,
      memMiB: o.memMiB,
      memKiB: o.memKiB,
      log: o.log ?? ctx.bootLog,
      timeoutMs: o.timeoutMs ?? expect.bootTimeoutMs,
      markers,
      interactive: o.interactive,
      extraArgs: [...(session?.extraArgs ?? []), ...(o.extraArgs ?? [])],
      onLine: session && !o.interactive ? (line) => session.onLine(line) : undefined,
      netns: o.netns,
    });
  } finally {
    await session?.close();
  }
}

/** What a boot through U-Boot shows first, in order: its banner, then bootm running the kernel in place. */
export const UBOOT_MARKERS = ['U-Boot 20', 'XIP Kernel Image'] as const;

/**
 * The lab script at the stock U-Boot's prompt (LOADER=uboot-stock), as an
 * engineer types it at a vendor's bootloader: the kernel command line (with mem=, because this
 * U-Boot passes memsize in MiB where Linux on malta reads bytes, and the
 * flash map as mtdparts), then bootm of the kernel partition.
 */
export function ubootDialog(board: Board, memMiB: number): DialogStep[] {
  const prompt = board.uboot!.prompt;
  const kernel = ubootKernelAddress(board);
  return [
    { expect: prompt, send: `setenv bootargs '${kernelCmdline(board)} mem=${memMiB}M'\n` },
    { expect: prompt, send: `bootm 0x${kernel.toString(16)}\n` },
  ];
}

/** Stage 4 (xip only): the whole flash image (loader, kernel, partitions), published as build/out/xip-bios.bin. */
export async function image(ctx: BuildContext, o: BuildOptions = {}): Promise<ImageReport> {
  if (!existsSync(ctx.vmlinux)) {
    throw badInput(`${ctx.vmlinux} not found: build the kernel first (xip --variant ${ctx.variant} build, or make)`);
  }
  const cache = hashCache(ctx);
  const { report } = await imageStage(ctx, { force: o.force, cache, stampPath: stampPath(ctx, 'image') });
  cache.save();
  if (report.vendor) {
    const v = report.vendor;
    info(`kernel partition: ${ctx.publishedImage} (${v.bytes} bytes): write it to partition '${v.partition}' at flash offset 0x${v.offset.toString(16)} only; ${v.loader} boots it with '${v.bootcmd}' (docs/porting.md: on the bench)`);
  } else info(`image: ${report.image} (${report.size} bytes); published ${ctx.publishedImage}`);
  return report;
}
