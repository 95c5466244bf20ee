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
