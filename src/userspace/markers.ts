/**
 * Console lines that the kernel and our target programs print on a good
 * boot, in order: what a boot of each userspace expects (types.ts). Plain
 * data: the QEMU runner's default (qemu/markers.ts) is the boot-test init's.
 */

/** The kernel's own lines: all a boot of an arbitrary staged rootfs can be judged by. */
export const KERNEL_MARKERS: readonly string[] = ['Linux version', 'Memory:', 'Freeing unused kernel'];

/** userspace/init.c, the boot test's PID 1: then it powers off. */
export const INIT_MARKERS: readonly string[] = [...KERNEL_MARKERS, 'XIP-USERSPACE-OK', 'XIP-POWEROFF:'];

/** The router's init once DHCP and httpd are up: the host may talk to it. */
export const LWRT_READY = 'LWRT-READY';

/** The router (userspace/lwrt/rootfs/init): ready, then powered off over HTTP. */
export const ROUTER_MARKERS: readonly string[] = [...KERNEL_MARKERS, LWRT_READY, 'LWRT-POWEROFF'];
