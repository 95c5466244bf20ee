import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type Toolchain } from '../src/context.ts';
import { flashBudget } from '../src/image/layout.ts';
import { readImageReport } from '../src/image/stage.ts';
import { bootBuilt } from '../src/pipeline.ts';
import { parseMemoryLine } from '../src/qemu/markers.ts';
import { qemuArgs } from '../src/qemu/runner.ts';
import { ROUTER_MARKERS } from '../src/userspace/markers.ts';
import { builtKernelRelease, routerBootSession, routerNicArgs } from '../src/userspace/routerboot.ts';
import { xipLogged } from './fixtures/cli.ts';

/**
 * The router image (lwrt_qemu_malta_defconfig, userspace 'router') built
 * through the CLI, then booted from its flash image alone with user
 * networking: the guest gets its address by DHCP, the host fetches the
 * status page over a forwarded loopback port, checks that it shows the
 * guest's own kernel release and memory, and powers the guest off over
 * HTTP; QEMU must exit 0. Both at the default RAM and at 16 MiB. The boots
 * go the way `xip boot` and `xip measure` go (bootBuilt, the runner, the
 * router's boot session), with a session that also fetches the status page.
 */
const toolchain = (mergeEnv({}).toolchain ?? 'clang') as Toolchain;
const config = 'lwrt_qemu_malta_defconfig';
const ctx = makeContext({ config, variant: 'xip', toolchain });

const cli = (args: string[], timeoutMs: number) => xipLogged(['--config', config, '--toolchain', toolchain, '--variant', 'xip', ...args], timeoutMs);

describe(`router image from flash (${toolchain})`, { timeout: 90 * 60 * 1000 }, () => {
  it('builds the router kernel and its image; the image fits the flash budget and carries the initramfs', async () => {
    let r = await cli(['build'], 80 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli(['image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    assert.ok(existsSync(ctx.imagePath));
    const report = readImageReport(ctx);
    assert.ok(report, 'image report');
    assert.equal(report.size, flashBudget(ctx.board), "the image is the whole chip");
    assert.ok(report.layout.used < report.layout.budget, `${report.layout.used} bytes used of ${report.layout.budget}`);
    const names = report.layout.regions.map((x) => x.name);
    // The router config stores its data deflated (CONFIG_XIP_DEFLATED_DATA), to leave flash for more.
    for (const n of ['boot shim', 'kernel text', 'rodata + tables', 'initramfs', 'data image (deflated)']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    const rd = report.layout.regions.find((x) => x.name === 'initramfs')!;
    assert.ok(rd.size > 100 * 1024, `initramfs of ${rd.size} bytes is too small to hold busybox`);
    const cfg = readFileSync(ctx.dotConfig, 'utf8');
    for (const s of ['XIP_KERNEL', 'XIP_DEFLATED_DATA', 'NET', 'PACKET', 'UNIX', 'INET', 'PCNET32', 'PROC_FS', 'SYSFS', 'TMPFS', 'DEVTMPFS', 'RD_GZIP', 'INITRAMFS_COMPRESSION_GZIP', 'MIPS_FP_SUPPORT']) {
      assert.match(cfg, new RegExp(`^CONFIG_${s}=y$`, 'm'), s);
    }
    const bb = JSON.parse(readFileSync(join(ctx.variantDir, 'userspace', 'busybox.json'), 'utf8')) as { version: string; sha256: string };
    assert.match(bb.sha256, /^[0-9a-f]{64}$/);
  });

  it('boots with only -bios and the router NICs: no default devices, PCnets in slots 11 (WAN) and 18 (LAN) without an option ROM', () => {
    const args = qemuArgs({ board: ctx.board, variant: 'xip', bios: ctx.imagePath, memMiB: 16, log: '/dev/null', extraArgs: routerNicArgs(ctx.board, 8080) });
    assert.ok(args.includes('-bios'));
    assert.ok(args.includes('-nodefaults'));
    for (const forbidden of ['-kernel', '-initrd', '-append', '-nic', '-net']) assert.ok(!args.includes(forbidden), forbidden);
    assert.equal(args[args.indexOf('-netdev') + 1], 'user,id=wan,restrict=on');
    assert.match(args[args.lastIndexOf('-netdev') + 1]!, /^user,id=lan,restrict=on,.*hostfwd=tcp:127\.0\.0\.1:8080-192\.168\.1\.1:80$/);
    assert.equal(args[args.indexOf('-device') + 1], 'pcnet,netdev=wan,addr=0x0b,romfile=');
    assert.equal(args[args.lastIndexOf('-device') + 1], 'pcnet,netdev=lan,addr=0x12,romfile=');
  });

  for (const mem of [ctx.board.qemu.defaultMemMiB, 16]) {
    it(`at -m ${mem}M: DHCP, status page over the forward shows this kernel and its memory, power-off over HTTP, QEMU exit 0`, async (t) => {
      assert.ok(existsSync(ctx.imagePath), 'built by the first test');
      const release = builtKernelRelease(ctx);
      const session = await routerBootSession(ctx, { checkStatus: true });
      const boot = await bootBuilt(ctx, { memMiB: mem, timeoutMs: 150_000, session });
      // Complete: bootBuilt returns once the session is closed.
      const r = session.record;
      const why = `log ${boot.log}\n${(boot.tail ?? []).join('\n')}`;
      assert.equal(r.error, undefined, `${r.error}\n${why}`);
      assert.ok(r.ready, why);
      assert.equal(r.status?.status, 200, why);
      const page = r.page!;
      assert.equal(page.kernelRelease, release, 'uname -r of the guest is the release this build recorded');
      assert.equal(page.machine, 'mips');
      assert.ok(page.memTotalKiB !== undefined && page.memTotalKiB > 0 && page.memTotalKiB <= mem * 1024, `MemTotal ${page.memTotalKiB} kB with ${mem} MiB`);
      assert.ok(page.memFreeKiB !== undefined && page.memFreeKiB > 0 && page.memFreeKiB <= page.memTotalKiB, `MemFree ${page.memFreeKiB}`);
      assert.ok(page.memAvailableKiB !== undefined && page.memAvailableKiB <= page.memTotalKiB, `MemAvailable ${page.memAvailableKiB}`);
      assert.ok(page.uptimeSeconds !== undefined && page.uptimeSeconds > 0, `uptime ${page.uptimeSeconds}`);
      assert.match(page.addresses, /inet 10\.0\.2\.15\/24/, 'the DHCP address on eth0');
      // restrict=on: QEMU's DHCP offers no router, so only the link route.
      assert.match(page.routes, /10\.0\.2\.0\/24 dev eth0/, 'the link route of the lease');
      assert.equal(r.poweroff?.status, 200, why);
      assert.deepEqual(boot.markersSeen, [...ROUTER_MARKERS], why);
      assert.equal(boot.failure, undefined, JSON.stringify(boot.failure));
      assert.equal(boot.exitCode, 0);
      assert.equal(boot.ok, true);
      const m = parseMemoryLine(boot.memoryLine ?? '');
      assert.ok(m, 'Memory: line');
      assert.equal(m.totalKiB, mem * 1024, boot.memoryLine);
      t.diagnostic(`-m ${mem}M: ${boot.memoryLine}; guest MemTotal ${page.memTotalKiB} kB, MemAvailable ${page.memAvailableKiB} kB`);
    });
  }
});
