import { Command, CommanderError } from 'commander';
import { addGlobalOptions, globalsOf } from './commands/common.ts';
import { COMMANDS } from './commands/index.ts';
import { EXIT, XipError, hostError } from './errors.ts';
import { setVerbose } from './log.ts';
import { killAllChildren, killChildrenOnExit, runCleanups, stopAllChildren } from './proc.ts';

/**
 * The `xip` command: the program, its global options and the way out
 * (exit codes, signals, crashes). Each command is a module of its own under
 * commands/, whose handler returns the exit code; options come from the
 * command line first, then from the environment (the Makefile passes
 * KERNEL_SRC, TOOLCHAIN, ... that way), then from defaults.
 */
export { contextFrom, mergeEnv, type GlobalOptions } from './commands/common.ts';

/** The xip program; `onExit` gets the exit code of the command that ran. */
export function buildProgram(onExit: (code: number) => void = () => {}): Command {
  const program = addGlobalOptions(new Command('xip'))
    .description('Build, verify and boot a Linux kernel that executes in place from flash (MIPS32r2: QEMU malta, booted; MT7628 and AR9331, built and verified)')
    .showHelpAfterError('(run xip --help for the commands and options)')
    .configureHelp({ sortSubcommands: false, helpWidth: 100 })
    .exitOverride();
  for (const c of COMMANDS) {
    // commander passes a command's positional arguments first, then its options and itself.
    c.define(program).action(async (...args: unknown[]) => {
      const g = globalsOf(program);
      setVerbose(Boolean(g.verbose));
      const positional = args.slice(0, -2).map((a) => (typeof a === 'string' ? a : undefined));
      onExit(await c.handler(g, args.at(-2) as object, ...positional));
    });
  }
  return program;
}

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
  verboseErrors = argv.includes('--verbose') || argv.includes('-v');
  let exitCode: number = EXIT.ok;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return crashCode ?? exitCode;
  } catch (err) {
    if (interrupted) return EXIT.interrupted;
    // Reported already; this error is most likely a child stopped because of it.
    if (crashCode !== undefined) return crashCode;
    if (err instanceof CommanderError) {
      // Help asked for (--help, `xip help <command>`) and version exit 0; usage
      // errors, and the help shown for no command, were printed by commander.
      if (err.exitCode === 0) return EXIT.ok;
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
