import { describe, it } from 'node:test';
import { boardSkip } from '../src/boards/index.ts';
import { makeContext } from '../src/context.ts';
import { xipBootSuite } from './fixtures/xip-suite.ts';
import { stressSuite } from './fixtures/stress-suite.ts';
import { contextOf, flashRootSuite } from './fixtures/flashroot-suite.ts';
import { networkSuite } from './fixtures/network-suite.ts';
import { routerSuite } from './fixtures/router-suite.ts';
import { powerCutIt } from './fixtures/powercut-suite.ts';
import { checkSizeAddsUp } from './fixtures/size.ts';
import { ubootSourceSuite } from './fixtures/uboot-suite.ts';

/** The suites below, by name: what a run that leaves malta-be out reports skipped. */
const SUITES = ['XIP kernel from flash (clang, gcc)', 'stress userspace', 'router image from flash (clang)', 'router with its root in flash', 'settings power cuts', 'router between network namespaces', 'xip size', 'U-Boot from source'];

const reason = boardSkip('malta-be');
if (reason) {
  // CI's Debian 12 root: malta-be runs in the Debian 13 root only. Each suite is reported skipped, with the reason.
  describe('malta-be (left out)', () => {
    for (const s of SUITES) it(`malta-be: ${s}`, { skip: reason }, () => undefined);
  });
} else {
  // The big-endian board (qemu-system-mips, mips-linux-gnu-): every RAM size
  // and the place proof with clang, the smallest and largest size with gcc.
  // The sampler's other half (a stock kernel seen in RAM) runs on malta.
  xipBootSuite('clang', [8, 16, 32, 256], true, 'malta-be', false);
  xipBootSuite('gcc', [8, 256], false, 'malta-be');
  // The stress userspace, XIP from flash and stock, with the same checksums.
  stressSuite('clang', 'malta-be');
  // The router userspace (musl and busybox built big-endian) with both compilers: clang's router
  // kernel with the userspace in its initramfs (DHCP, the status page, power-off over HTTP, at the
  // default RAM and 16 MiB), and gcc's with its root in flash (cramfs over MTD, as on malta):
  // busybox's code seen executing from the chip at 256 and 16 MiB. The all-compressed control runs on malta.
  routerSuite('clang', 'malta-be');
  flashRootSuite('malta-be', [256, 16], false);
  // Settings written big-endian by the CFI driver from RAM while the kernel runs from the same chip:
  // a clean write, the PC samples, and 20 power cuts (malta makes 50; 20 still land on both sides).
  describe('settings on the flash the kernel executes from (malta-be, gcc)', { timeout: 30 * 60 * 1000 }, () => {
    powerCutIt('malta-be', 20);
  });
  // That router between network namespaces (DHCP, DNS, NAT, the WAN scan, power-off with the token), at 256 MiB.
  networkSuite('malta-be', [256], false);
  // xip size on big-endian builds: flash and RAM add up to the image's regions and vmlinux's sections.
  describe('xip size on malta-be', { timeout: 10 * 60 * 1000 }, () => {
    it('the minimal XIP kernel (clang): flash and RAM add up at every level', () => checkSizeAddsUp(makeContext({ board: 'malta-be', variant: 'xip', toolchain: 'clang' })));
    it('the router with its root in flash (gcc): flash and RAM add up at every level', () => checkSizeAddsUp(contextOf('router-xip', 'malta-be')));
  });
  // U-Boot built from Debian's source for big-endian malta (malta_defconfig), booting the XIP uImage by itself.
  ubootSourceSuite('clang', 'malta-be');
}
