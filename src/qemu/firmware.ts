import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { XipError, EXIT } from '../errors.ts';

/**
 * QEMU must start with nothing outside the qemu-system-mips package: no
 * option ROM (ipxe-qemu's efi-pcnet.rom) and no VGA BIOS (seabios), which
 * Debian only recommends. The board arguments make that so (-nodefaults,
 * a NIC with an empty romfile). To prove it on any machine, including one
 * that has those packages, a boot can run with QEMU's firmware directories
 * hidden: QEMU is started in a private mount namespace where an empty tmpfs
 * lies over every directory `qemu -L help` lists.
 *
 * `-L DIR` alone does not do this: QEMU 7.2 searches a -L directory first
 * and its built-in directories after it (measured: with ipxe-qemu
 * installed, `-L /empty -nic user,model=pcnet` still starts).
 */

/** Environment variable that makes every boot hide QEMU's firmware ('1'). */
export const HIDE_FIRMWARE_ENV = 'XIP_QEMU_HIDE_FIRMWARE';

/** The directories QEMU searches for firmware and ROMs (`-L help`). */
export function firmwareDirs(binary: string): string[] {
  const r = spawnSync(binary, ['-L', 'help'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new XipError(`${binary} -L help failed: ${r.error?.message ?? r.stderr.trim()}; is qemu-system-mips installed? (xip doctor --install)`, {
      exitCode: EXIT.environment,
    });
  }
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
}

/**
 * Mount an empty tmpfs over each directory given (that exists), then exec
 * the command: `sh -c SCRIPT sh N DIR... CMD ARG...`. Runs inside `unshare
 * --mount`, so the host's mounts never change.
 */
const HIDE_SCRIPT =
  'n=$1; shift; while [ "$n" -gt 0 ]; do ' +
  'if [ -d "$1" ]; then mount -t tmpfs -o ro,size=4k xip-nofw "$1" || exit 97; fi; ' +
  'shift; n=$((n-1)); done; exec "$@"';

/** unshare flags for a private mount namespace: as root directly, otherwise in a user namespace. */
function unshareFlags(uid = process.getuid?.() ?? -1): string[] {
  return uid === 0 ? ['--mount'] : ['--map-root-user', '--mount'];
}

/** The command that runs `cmd args` with `dirs` hidden under empty mounts. */
export function hiddenCommand(dirs: readonly string[], cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  return { cmd: 'unshare', args: [...unshareFlags(), '--', 'sh', '-c', HIDE_SCRIPT, 'sh', String(dirs.length), ...dirs, cmd, ...args] };
}

/** Can this process hide directories from a child (unshare present, mount namespaces allowed)? */
export function canHideFirmware(): boolean {
  if (!existsSync('/usr/bin/unshare') && !existsSync('/bin/unshare')) return false;
  const c = hiddenCommand(['/tmp'], 'true', []);
  const r = spawnSync(c.cmd, c.args, { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

/**
 * How to start QEMU: the binary itself, or wrapped so that its firmware
 * directories are hidden when `hide` is true (default: the environment
 * variable HIDE_FIRMWARE_ENV is '1').
 */
export function qemuCommand(binary: string, args: readonly string[], hide = process.env[HIDE_FIRMWARE_ENV] === '1'): { cmd: string; args: string[] } {
  if (!hide) return { cmd: binary, args: [...args] };
  return hiddenCommand(firmwareDirs(binary), binary, args);
}
