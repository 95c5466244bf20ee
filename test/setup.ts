import { killChildrenOnExit, runCleanups, stopAllChildren } from '../src/proc.ts';
import { canHideFirmware, HIDE_FIRMWARE_ENV } from '../src/qemu/firmware.ts';

/**
 * Loaded before every test file (node --import): every QEMU the suite
 * starts, directly or through the xip command, runs with QEMU's firmware
 * directories hidden where this machine allows a private mount namespace,
 * so a boot that needs an option ROM or VGA BIOS fails here even on a
 * machine that has ipxe-qemu and seabios installed. test/firmware.test.ts
 * reports a skip when it cannot be done.
 */
if (process.env[HIDE_FIRMWARE_ENV] === undefined && canHideFirmware()) process.env[HIDE_FIRMWARE_ENV] = '1';

/**
 * A test process stopped by a signal (the runner cancelled it, ^C) stops
 * what it started, as the xip command does: every child's process group
 * (a QEMU, a make) and then the registered cleanups (a test's network
 * namespaces); on a plain exit the children still running are killed.
 */
killChildrenOnExit();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void stopAllChildren()
      .then(runCleanups)
      .finally(() => process.exit(130));
  });
}
