import { Command, Option } from 'commander';
import { LOADERS, type Loader } from '../boards/board.ts';
import { boardNames } from '../boards/index.ts';
import { DEFAULTS, defconfigName, makeContext, TOOLCHAINS, VARIANTS, type BuildContext, type ContextOptions, type Toolchain, type Variant } from '../context.ts';
import { badInput } from '../errors.ts';
import { profileNames } from '../userspace/profiles.ts';

/**
 * What every command module shares: the global options (command line
 * first, then the environment, where the Makefile passes KERNEL_SRC,
 * TOOLCHAIN, ...; then the defaults), the option parsers, and the shape of
 * a command.
 */
export interface GlobalOptions {
  board?: string;
  config?: string;
  variant?: Variant;
  toolchain?: Toolchain;
  loader?: Loader;
  flashMap?: string;
  userspace?: string;
  lwrtRootfs?: string;
  settings?: string;
  kernelSrc?: string;
  kernelTarball?: string;
  kernelSha256?: string;
  buildDir?: string;
  verbose?: boolean;
}

/**
 * One `xip` command: `define` adds it (name, description, options) to the
 * program; `handler` runs it with the parsed options and returns its exit
 * code. A failure can also be thrown (an XipError carries its exit code).
 */
export interface CommandModule<O extends object = object> {
  define(program: Command): Command;
  /** `args`: the command's positional arguments, if it defines any (undefined when left out). */
  handler(globals: GlobalOptions, options: O, ...args: (string | undefined)[]): Promise<number>;
}

/**
 * Values are trimmed. A blank one is dropped: commander then stores '' and
 * globalsOf() treats that as unset when it came from the environment (make
 * passes `VAR=` on as an empty string), while a blank command-line value
 * stays '' and is refused where it is used, as before.
 */
function trimmed(option: Option): Option {
  const check = option.parseArg;
  return option.argParser((value: string, previous: unknown) => {
    const v = value.trim();
    if (v === '') return undefined;
    return check ? check(v, previous) : v;
  });
}

/**
 * An option that falls back to an environment variable (commander's
 * .env()), trimmed, a blank value counting as unset. Give it its choices
 * or parser first: this wraps them.
 */
const fromEnv = (option: Option, variable: string): Option => trimmed(option.env(variable));

/** Add the global options (and their environment variables) to a command. */
export function addGlobalOptions(cmd: Command): Command {
  return cmd
    .addOption(fromEnv(new Option('--board <name>', 'board').choices(boardNames()).default(DEFAULTS.board), 'BOARD'))
    .addOption(fromEnv(new Option('--config <defconfig>', 'defconfig from kernel/configs/').argParser(defconfigName), 'CONFIG'))
    .addOption(fromEnv(new Option('--variant <xip|stock>', 'kernel variant').choices(VARIANTS).default(DEFAULTS.variant), 'VARIANT'))
    .addOption(fromEnv(new Option('--toolchain <clang|gcc|llvm>', 'compiler: clang (with GNU ld), gcc, or llvm (LLVM=1: clang, ld.lld, llvm binutils)').choices(TOOLCHAINS).default(DEFAULTS.toolchain), 'TOOLCHAIN'))
    .addOption(fromEnv(new Option('--loader <shim|uboot|uboot-stock|vendor>', "what boots the kernel: shim (ours, 4 KiB; QEMU boards' default), uboot (built from Debian source, boots by itself), uboot-stock (Debian binary), vendor (a real board's own boot loader, its default)").choices(LOADERS), 'LOADER'))
    .addOption(fromEnv(new Option('--flash-map <file.json>', "partitions (JSON) instead of the board's map for the loader; the kernel is linked where it says"), 'FLASH_MAP'))
    .addOption(fromEnv(new Option('--userspace <profile>', `userspace profile: ${profileNames().join(', ')} (router-xip, router-cramfs: root filesystem in flash; default: the config's own)`), 'USERSPACE'))
    .addOption(fromEnv(new Option('--lwrt-rootfs <dir>', 'embed this staged rootfs as the initramfs (implies the router config)'), 'LWRT_ROOTFS'))
    .addOption(fromEnv(new Option('--settings <file>', "key=value lines the image's settings partition starts with (root-in-flash routers; over userspace/lwrt/settings.defaults)"), 'SETTINGS'))
    .addOption(fromEnv(new Option('--kernel-src <dir>', 'kernel tree to copy and use'), 'KERNEL_SRC'))
    .addOption(fromEnv(new Option('--kernel-tarball <file>', 'kernel tarball to use'), 'KERNEL_TARBALL'))
    .addOption(fromEnv(new Option('--kernel-sha256 <hex>', 'expected sha256 of it'), 'KERNEL_SHA256'))
    .addOption(new Option('--build-dir <dir>', 'where builds go (default ./build)'))
    .option('-v, --verbose', 'more output; a stack trace on errors');
}

/** The global options of a parsed command; a blank environment variable is as if unset (its default stands). */
export function globalsOf(cmd: Command): GlobalOptions {
  const out: Record<string, unknown> = { ...cmd.opts() };
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (out[key] === '' && cmd.getOptionValueSource(key) === 'env') out[key] = o.defaultValue;
  }
  return out as GlobalOptions;
}

/**
 * The global options the xip command would see with `given` on its command
 * line and this environment, through the same commander options (for tests
 * and scripts that must pick the same build as `make`).
 */
export function mergeEnv(given: GlobalOptions = {}, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const cmd = addGlobalOptions(new Command('xip')).exitOverride();
  // commander reads process.env while it parses; parse() is synchronous.
  const saved = process.env;
  process.env = env;
  try {
    cmd.parse([], { from: 'user' });
  } finally {
    process.env = saved;
  }
  const out = globalsOf(cmd);
  for (const [k, v] of Object.entries(given)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export function contextFrom(o: GlobalOptions, extra: ContextOptions = {}): BuildContext {
  return makeContext({
    board: o.board,
    config: o.config,
    variant: o.variant,
    toolchain: o.toolchain,
    loader: o.loader,
    flashMap: o.flashMap,
    userspace: o.userspace,
    rootfs: o.lwrtRootfs,
    settings: o.settings,
    buildDir: o.buildDir,
    ...extra,
  });
}

// Option parsers (commander's .argParser()). A bad value is bad input (exit 2), reported as one line.

/** A RAM size in MiB: 256, 256M or 1G. */
export function parseMem(v: string): number {
  const m = /^(\d+)\s*([mMgG])?$/.exec(v.trim());
  if (!m?.[1]) throw badInput(`--mem '${v}': give a size in MiB, e.g. 256 or 256M`);
  const n = Number(m[1]) * (m[2]?.toLowerCase() === 'g' ? 1024 : 1);
  if (n <= 0) throw badInput(`--mem '${v}': must be more than 0`);
  return n;
}

/** --timeout: seconds, more than 0. */
export function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw badInput(`--timeout '${v}': give a number of seconds, e.g. 60`);
  return n;
}

/** A parser of a whole number, `least` (default 1) or more; `hint` says what to give. */
export function wholeNumber(flag: string, hint: string, least = 1): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < least) throw badInput(`${flag} '${v}': ${hint}`);
    return n;
  };
}

/** The guest RAM and boot timeout options of the boot, run and soak commands. */
export interface BootOptions {
  mem?: number;
  timeout?: number;
  json?: boolean;
}

/** --timeout in milliseconds, when given. */
export const timeoutMs = (o: BootOptions): number | undefined => (o.timeout !== undefined ? o.timeout * 1000 : undefined);
