import { Command, CommanderError, Option } from 'commander';
import { makeContext, type BuildContext, type ContextOptions } from './context.ts';
import { EXIT, XipError, badInput, hostError } from './errors.ts';
import { info, setVerbose } from './log.ts';
import { killAllChildren, killChildrenOnExit, runCleanups, stopAllChildren } from './proc.ts';

/**
 * The `xip` command: argument parsing only. Every command is a function in
 * another module; options come from the command line first, then from the
 * environment (the Makefile passes KERNEL_SRC, TOOLCHAIN, ... that way),
 * then from defaults.
 */
export interface GlobalOptions {
  board?: string;
  config?: string;
  variant?: string;
  toolchain?: string;
  userspace?: string;
  lwrtRootfs?: string;
  kernelSrc?: string;
  kernelTarball?: string;
  kernelSha256?: string;
  buildDir?: string;
  verbose?: boolean;
  json?: boolean;
}

/** Environment variable of each global option. */
export const ENV_OF: Record<string, keyof GlobalOptions> = {
  BOARD: 'board',
  CONFIG: 'config',
  VARIANT: 'variant',
  TOOLCHAIN: 'toolchain',
  USERSPACE: 'userspace',
  LWRT_ROOTFS: 'lwrtRootfs',
  KERNEL_SRC: 'kernelSrc',
  KERNEL_TARBALL: 'kernelTarball',
  KERNEL_SHA256: 'kernelSha256',
};

/** Command-line options win over the environment; empty variables count as unset. */
export function mergeEnv(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const out: GlobalOptions = { ...opts };
  for (const [name, key] of Object.entries(ENV_OF)) {
    const v = env[name];
    if (out[key] === undefined && v !== undefined && v.trim() !== '') (out as Record<string, unknown>)[key] = v.trim();
  }
  return out;
}

export function contextFrom(o: GlobalOptions, extra: ContextOptions = {}): BuildContext {
  return makeContext({
    board: o.board,
    config: o.config,
    variant: o.variant,
    toolchain: o.toolchain,
    userspace: o.userspace,
    rootfs: o.lwrtRootfs,
    buildDir: o.buildDir,
    ...extra,
  });
}

function parseMem(v: string): number {
  const m = /^(\d+)\s*([mMgG])?$/.exec(v.trim());
  if (!m?.[1]) throw badInput(`--mem '${v}': give a size in MiB, e.g. 256 or 256M`);
  const n = Number(m[1]) * (m[2]?.toLowerCase() === 'g' ? 1024 : 1);
  if (n <= 0) throw badInput(`--mem '${v}': must be more than 0`);
  return n;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw badInput(`--timeout '${v}': give a number of seconds, e.g. 60`);
  return n;
}

export function buildProgram(): Command {
  const program = new Command('xip');
  program
    .description('Build, verify and boot a Linux kernel that executes in place from flash (MIPS32r2, QEMU malta)')
    .addOption(new Option('--board <name>', 'board (env BOARD; default malta)'))
    .addOption(new Option('--config <defconfig>', 'defconfig from kernel/configs/ (env CONFIG)'))
    .addOption(new Option('--variant <xip|stock>', 'kernel variant (env VARIANT; default xip)'))
    .addOption(new Option('--toolchain <clang|gcc>', 'compiler (env TOOLCHAIN; default clang)'))
    .addOption(new Option('--userspace <profile>', 'initramfs userspace: init, or another profile (env USERSPACE; default: the config\'s own)'))
    .addOption(new Option('--lwrt-rootfs <dir>', 'embed this staged rootfs as the initramfs (env LWRT_ROOTFS; implies the router config)'))
    .addOption(new Option('--kernel-src <dir>', 'kernel tree to copy and use (env KERNEL_SRC)'))
    .addOption(new Option('--kernel-tarball <file>', 'kernel tarball to use (env KERNEL_TARBALL)'))
    .addOption(new Option('--kernel-sha256 <hex>', 'expected sha256 of it (env KERNEL_SHA256)'))
    .addOption(new Option('--build-dir <dir>', 'where builds go (default ./build)'))
    .option('-v, --verbose', 'more output; a stack trace on errors')
    .showHelpAfterError('(run xip --help for the commands and options)')
    .configureHelp({ sortSubcommands: false, helpWidth: 100 })
    .exitOverride();

  const globals = (): GlobalOptions => {
    const o = mergeEnv(program.opts<GlobalOptions>());
    setVerbose(Boolean(o.verbose));
    return o;
  };

  program
    .command('doctor')
    .description('check host tools (version found and needed); --install adds missing')
    .option('--install', 'apt-get install the missing packages (as root, or through sudo)')
    .option('--json', 'machine-readable output')
    .option('--fresh-check', 'also what make fresh-check needs on the host (debootstrap, git)')
    .action(async (o: { install?: boolean; json?: boolean; freshCheck?: boolean }) => {
      const g = globals();
      const { doctor } = await import('./doctor.ts');
      exitCode = await doctor({
        install: o.install,
        json: o.json,
        freshCheck: o.freshCheck,
        needDebianSource: !g.kernelSrc && !g.kernelTarball,
      });
    });

  program
    .command('source')
    .description('unpack or copy the kernel and apply kernel/patches/ (build/src)')
    .option('--force', 'prepare again even when up to date')
    .action(async (o: { force?: boolean }) => {
      const g = globals();
      const ctx = contextFrom(g);
      const { sourceStage } = await import('./pipeline.ts');
      const s = await sourceStage(ctx, { ...g, force: o.force });
      info(`kernel source: Linux ${s.version} from ${s.origin}`);
    });

  program
    .command('build')
    .description('build userspace + initramfs, configure and compile the kernel')
    .option('--force', 'run every stage even when up to date')
    .action(async (o: { force?: boolean }) => {
      const g = globals();
      const ctx = contextFrom(g);
      const { build } = await import('./pipeline.ts');
      await build(ctx, { ...g, force: o.force });
    });

  program
    .command('image')
    .description('assemble the flash image (shim + XIP vmlinux: xip-bios.bin)')
    .option('--force', 'assemble again even when up to date')
    .option('--json', 'print the image report (layout map) as JSON')
    .action(async (o: { force?: boolean; json?: boolean }) => {
      const ctx = contextFrom(globals());
      const { image } = await import('./pipeline.ts');
      const report = await image(ctx, { force: o.force });
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const { formatLayout } = await import('./image/index.ts');
        process.stdout.write(`${formatLayout(report.layout)}\n`);
      }
    });

  program
    .command('verify')
    .description('check the XIP vmlinux and flash image layout rules')
    .option('--vmlinux <file>', 'ELF to check (default: the build of --variant)')
    .option('--dot-config <file>', '.config to check (default: the build of --variant)')
    .option('--image <file>', 'flash image to check (default: the build of --variant)')
    .option('--json', 'machine-readable report')
    .action(async (o: { vmlinux?: string; dotConfig?: string; image?: string; json?: boolean }) => {
      const ctx = contextFrom(globals());
      const { verifyCommand } = await import('./verify/index.ts');
      exitCode = verifyCommand(ctx, { vmlinux: o.vmlinux, configFile: o.dotConfig, image: o.image, json: o.json });
    });

  const bootCommand = (name: string, interactive: boolean, description: string) =>
    program
      .command(name)
      .description(description)
      .option('--mem <MiB>', 'guest RAM (default: the board default, 256 MiB on malta)')
      .option('--timeout <seconds>', interactive ? 'stop after this long (default: never)' : 'fail after this long (default 60)')
      .option('--json', 'print the boot result as JSON')
      .action(async (o: { mem?: string; timeout?: string; json?: boolean }) => {
        const g = globals();
        const ctx = contextFrom(g);
        const mem = o.mem !== undefined ? parseMem(o.mem) : ctx.board.qemu.defaultMemMiB;
        const timeoutMs = o.timeout !== undefined ? parseSeconds(o.timeout) * 1000 : undefined;
        const { bootBuilt } = await import('./pipeline.ts');
        const r = await bootBuilt(ctx, { memMiB: mem, timeoutMs, interactive });
        if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        if (!interactive) {
          const { assertBooted } = await import('./qemu/runner.ts');
          assertBooted(r, `${ctx.variant} boot`);
          info(`boot ok in ${(r.ms / 1000).toFixed(1)}s: ${r.markersSeen.length} markers, QEMU exit ${r.exitCode}; log ${r.log ?? ctx.bootLog}`);
        }
      });
  bootCommand('boot', false, 'boot in QEMU; require the console markers and a power-off');
  bootCommand('run', true, 'boot in QEMU interactively (Ctrl-A X quits)');

  program
    .command('measure')
    .description('measure XIP against stock: RAM, min RAM, boot instructions, flash')
    .option('--sizes <MiB,...>', 'RAM sizes for the Memory: line (default 8,16,256; "none" to skip)')
    .option('--no-min-ram', 'skip the minimum-RAM bisection')
    .option('--no-boot-cost', 'skip the guest instruction counts')
    .option('--build-time', 'also time a clean build in a fresh clone and a no-op make (slow)')
    .option('--runs <n>', 'runs of each instruction count (default 2)')
    .option('--save', 'write bench/results-<config>.json')
    .option('--json', 'print every number as JSON')
    .action(async (o: { sizes?: string; minRam?: boolean; bootCost?: boolean; buildTime?: boolean; runs?: string; save?: boolean; json?: boolean }) => {
      const g = globals();
      const { measure, resultsPath, saveResults } = await import('./measure/index.ts');
      const { formatResults } = await import('./report/format.ts');
      const sizes =
        o.sizes === undefined ? undefined : o.sizes === 'none' ? [] : o.sizes.split(',').map((s) => parseMem(s));
      const runs = o.runs === undefined ? undefined : Number(o.runs);
      if (runs !== undefined && (!Number.isInteger(runs) || runs < 1)) throw badInput(`--runs '${o.runs}': give a whole number >= 1`);
      const r = await measure({ ...g, sizes, minRam: o.minRam, bootCost: o.bootCost, buildTime: o.buildTime, runs });
      if (o.save) {
        const p = resultsPath(contextFrom(g).repo, r.config);
        saveResults(r, p);
        info(`results: ${p}`);
      }
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatResults(r)}\n`);
    });

  program
    .command('bench')
    .description('make bench: measure the minimal and router configs (or --config)')
    .option('--no-build-time', 'skip the (slow) clean and no-op build timing')
    .action(async (o: { buildTime?: boolean }) => {
      const g = globals();
      const { bench } = await import('./measure/bench.ts');
      // --config (or CONFIG=): only that config; the README section still covers every results file.
      const configs = g.config ? [g.config.endsWith('_defconfig') ? g.config : `${g.config}_defconfig`] : undefined;
      const r = await bench({ board: g.board, toolchain: g.toolchain, buildDir: g.buildDir, buildTime: o.buildTime, configs });
      if (r.failed.length > 0) {
        throw new XipError(`bench: ${r.failed.length} config(s) failed`, { details: r.failed });
      }
    });

  program
    .command('report')
    .description('rewrite the README results section from bench/results-*.json')
    .option('--missing <text...>', 'note a config that was not measured, and why')
    .action(async (o: { missing?: string[] }) => {
      const g = globals();
      const { updateReadme } = await import('./report/readme.ts');
      const u = updateReadme(contextFrom(g).repo, { missing: o.missing });
      info(`${u.path}: ${u.changed ? 'results section rewritten' : 'results section already up to date'} from ${u.files.length} results file(s)`);
    });

  program
    .command('soak')
    .description('boot the XIP image N times; report failures and boot-time spread')
    .option('--count <n>', 'number of boots (default 50)')
    .option('--mem <MiB>', 'guest RAM (default: the board default)')
    .option('--timeout <seconds>', 'fail a boot after this long (default 60)')
    .option('--json', 'print the soak report as JSON')
    .action(async (o: { count?: string; mem?: string; timeout?: string; json?: boolean }) => {
      const ctx = contextFrom(globals());
      const count = o.count === undefined ? 50 : Number(o.count);
      if (!Number.isInteger(count) || count < 1) throw badInput(`--count '${o.count}': give a whole number of boots, 1 or more`);
      const mem = o.mem !== undefined ? parseMem(o.mem) : ctx.board.qemu.defaultMemMiB;
      const timeoutMs = o.timeout !== undefined ? parseSeconds(o.timeout) * 1000 : undefined;
      const { soak, formatSoak, assertSoaked } = await import('./soak.ts');
      const r = await soak(ctx, { count, memMiB: mem, timeoutMs });
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      info(formatSoak(r));
      assertSoaked(r);
    });

  program
    .command('fresh-check')
    .description("README's make + make test in a new debootstrap root (Debian 12|13)")
    .addOption(new Option('--debian <12|13>', 'Debian release of the root (env DEBIAN)').env('DEBIAN'))
    .option('--keep', 'keep the root afterwards (mounts are removed all the same)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { debian?: string; keep?: boolean; json?: boolean }) => {
      const { freshCheck, formatFresh, releaseOf } = await import('./fresh.ts');
      const { REPO_ROOT } = await import('./context.ts');
      const g = globals();
      const release = releaseOf(o.debian);
      const r = await freshCheck({ repo: REPO_ROOT, release, keep: o.keep, workDir: g.buildDir ? `${g.buildDir}/fresh/debian-${release.version}` : undefined });
      if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      info(formatFresh(r));
    });

  return program;
}

let exitCode: number = EXIT.ok;
let handlersInstalled = false;
/** Set on SIGINT/SIGTERM: the failures of the children being stopped are not errors to report. */
let interrupted = false;
/** Set by a crash (an exception or rejection nothing handled): the exit code it was reported with. */
let crashCode: number | undefined;
/** The toolkit is on its way out (signal or crash): the children are being stopped. */
let stopping = false;
/** --verbose of the running command, for errors reported outside main. */
let verboseErrors = false;

/** Stop every child (SIGTERM, then SIGKILL), run the cleanups, then exit with this code. */
function stopThenExit(code: number): void {
  stopping = true;
  void stopAllChildren()
    .then(runCleanups)
    .finally(() => process.exit(code));
}

/**
 * Every way out of the toolkit stops its children (each runs in a process
 * group of its own, so a `make -j` or a QEMU would otherwise outlive it):
 * SIGINT/SIGTERM and crashes stop them and run the cleanups, then exit; a
 * plain exit kills whatever is still running (killChildrenOnExit). A crash
 * (an exception thrown in an event handler, a rejection nobody awaited) is
 * reported like any error, as one line and its exit code.
 */
export function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  killChildrenOnExit();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      // A second signal while the children are being stopped: stop at once.
      if (stopping) {
        killAllChildren();
        process.exit(EXIT.interrupted);
      }
      interrupted = true;
      process.stderr.write(`\nxip: interrupted (${sig}); stopping child processes\n`);
      stopThenExit(EXIT.interrupted);
    });
  }
  const crash = (err: unknown) => {
    const code = reportError(err, verboseErrors);
    // Already on the way out: the first reason's exit code stands.
    if (stopping) return;
    crashCode = code;
    stopThenExit(code);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

/** Print an error as one line (+ its detail lines); a stack only with --verbose. */
export function reportError(err: unknown, verbose: boolean): number {
  const known = err instanceof XipError ? err : hostError(err);
  if (known) {
    process.stderr.write(`xip: error: ${known.message}\n`);
    for (const d of known.details) process.stderr.write(`  | ${d}\n`);
    const stack = err instanceof Error ? err.stack : undefined;
    if (verbose && stack) process.stderr.write(`${stack}\n`);
    return known.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`xip: internal error: ${e.message}\n`);
  if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write('  (run with --verbose for the stack trace)\n');
  return EXIT.failed;
}

export async function main(argv: string[]): Promise<number> {
  installSignalHandlers();
  exitCode = EXIT.ok;
  verboseErrors = argv.includes('--verbose') || argv.includes('-v');
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return crashCode ?? exitCode;
  } catch (err) {
    if (interrupted) return EXIT.interrupted;
    // Reported already; this error is most likely a child stopped because of it.
    if (crashCode !== undefined) return crashCode;
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; usage errors were printed by commander.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') {
        return EXIT.ok;
      }
      return EXIT.badInput;
    }
    return reportError(err, verboseErrors);
  } finally {
    // A command that failed (or forgot) may leave a child running: stop it
    // now rather than wait for it, and undo what is registered.
    if (!stopping) {
      await stopAllChildren();
      await runCleanups();
    }
  }
}
