import { FLASH_ROUTER_TOOLCHAIN } from '../src/userspace/router.ts';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, userspacePaths, type Toolchain } from '../src/context.ts';
import { swapWords } from '../src/image/layout.ts';
import { readImageReport } from '../src/image/stage.ts';
import { bootBuilt } from '../src/pipeline.ts';
import { parseMemoryLine } from '../src/qemu/markers.ts';
import { sampleUserPcs, type UserPcSample } from '../src/qemu/qmp.ts';
import { readCramfs } from '../src/userspace/cramfs.ts';
import { parseMappings, parsePages, rootfsImagePath, type MappedPage, type PageMapping } from '../src/userspace/flashroot.ts';
import { ROUTER_MARKERS } from '../src/userspace/markers.ts';
import { routerBootSession } from '../src/userspace/routerboot.ts';
import { profilePath, readProfile } from '../src/userspace/xipprofile.ts';
import { xipLogged } from './fixtures/cli.ts';

/**
 * The router with its root filesystem in flash (cramfs over an mtd-rom map,
 * src/userspace/flashroot.ts), booted from the flash image alone: the shim
 * passes the device tree with the root's partition, the kernel mounts
 * root=mtd:rootfs, the router serves and powers off over HTTP.
 * What shows that user code executes in place: /cgi-bin/pages lists every
 * page of busybox's mappings with its physical address from
 * /proc/self/pagemap. With 'router-cramfs' (the control: same root, all
 * compressed) the code pages are page-cache pages in RAM. With
 * 'router-xip' cramfs maps the code straight from flash with
 * remap_pfn_range (a VM_PFNMAP mapping), which the kernel's page walk,
 * and so pagemap, skips: every code page shows as not present, while the
 * data pages are in RAM. A root copied into RAM would show its code pages
 * at RAM addresses, as the control does, and fail.
 * And from outside the guest: QEMU is stopped over QMP again and again
 * while it boots; whenever its PC is in busybox's code, gva2gpa translates
 * it through the guest's own MMU state. For router-xip every such physical
 * address is in the root's partition of the flash chip, for the control
 * in RAM.
 */
// The router in flash is built with gcc (FLASH_ROUTER_TOOLCHAIN: clang's does not fit the flash).
const toolchain: Toolchain = FLASH_ROUTER_TOOLCHAIN;
const config = 'lwrt_qemu_malta_defconfig';

function contextOf(userspace: string) {
  return makeContext({ config, variant: 'xip', toolchain, userspace });
}

const cli = (userspace: string, args: string[], timeoutMs: number) =>
  xipLogged(['--config', config, '--toolchain', toolchain, '--variant', 'xip', '--userspace', userspace, ...args], timeoutMs);

interface PagesSeen {
  code: MappedPage[];
  data: MappedPage[];
  /** busybox's mappings as /proc/self/maps lists them. */
  maps: PageMapping[];
  /** The guest stopped in busybox's code (from outside: QMP), with the physical address of the PC. */
  userPcs: UserPcSample[];
  boot: Awaited<ReturnType<typeof bootBuilt>>;
}

async function bootAndMap(userspace: string, mem: number): Promise<PagesSeen> {
  const ctx = contextOf(userspace);
  const session = await routerBootSession(ctx, { checkPages: true });
  const dir = mkdtempSync(join(tmpdir(), 'xip-flashroot-'));
  const sock = join(dir, 'qmp.sock');
  let boot: Awaited<ReturnType<typeof bootBuilt>>;
  let samples: UserPcSample[];
  try {
    const extraArgs = ['-qmp', `unix:${sock},server=on,wait=off`];
    // The boot is always awaited: a sampler that fails must not leave QEMU running unwatched.
    const [b, s] = await Promise.allSettled([bootBuilt(ctx, { memMiB: mem, timeoutMs: 150_000, session, extraArgs }), sampleUserPcs(sock, { userTop: 0x80000000 })]);
    if (b.status === 'rejected') throw b.reason;
    if (s.status === 'rejected') throw new Error(`QMP sampling failed: ${(s.reason as Error).message}`);
    boot = b.value;
    samples = s.value;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const r = session.record;
  const why = `log ${boot.log}\n${(boot.tail ?? []).join('\n')}`;
  assert.equal(r.error, undefined, `${r.error}\n${why}`);
  assert.equal(r.pages?.status, 200, why);
  assert.deepEqual(boot.markersSeen, [...ROUTER_MARKERS], why);
  assert.equal(boot.exitCode, 0, why);
  assert.ok(boot.log, 'boot log');
  const log = readFileSync(boot.log, 'utf8');
  assert.match(log, /VFS: Mounted root \(cramfs filesystem\) readonly/, 'the root is the cramfs in flash');
  // The command line is the passed tree's bootargs alone: one console, no mtdparts for a disabled chip.
  assert.match(log, /Kernel command line: console=ttyS0,115200 root=mtd:rootfs rootfstype=cramfs ro init=\/init\s*$/m);
  const m = parseMemoryLine(boot.memoryLine ?? '');
  assert.ok(m && m.totalKiB === mem * 1024, boot.memoryLine);
  const pages = parsePages(r.pages!.body);
  const code = pages.filter((p) => p.perms.includes('x'));
  const inCode = (pc: number) => code.some((p) => pc >= p.vaddr && pc < p.vaddr + 4096);
  const userPcs = samples.filter((x) => x.phys !== undefined && inCode(x.pc));
  return { code, data: pages.filter((p) => p.perms.includes('w') && p.phys !== undefined), maps: parseMappings(r.pages!.body), userPcs, boot };
}

const hex = (n: number) => `0x${n.toString(16)}`;

describe(`router with its root in flash (${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  for (const userspace of ['router-xip', 'router-cramfs']) {
    it(`${userspace}: builds; the image holds the cramfs in its own partition after the kernel and a device tree for the shim`, async () => {
      const ctx = contextOf(userspace);
      let r = await cli(userspace, ['build'], 40 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      r = await cli(userspace, ['image'], 5 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      const report = readImageReport(ctx);
      assert.ok(report?.rootfs && report.deviceTree, 'rootfs and device tree in the image report');
      const cfg = readFileSync(ctx.dotConfig, 'utf8');
      for (const s of ['MTD_PHYSMAP_OF', 'MTD_ROM', 'CRAMFS', 'CRAMFS_MTD', 'MIPS_CMDLINE_FROM_DTB']) assert.match(cfg, new RegExp(`^CONFIG_${s}=y$`, 'm'), s);
      // The CFI driver is there for the settings partition, only with its write path in RAM (integration-settings).
      assert.match(cfg, /^CONFIG_MTD_XIP=y$/m, 'a CFI driver for the chip the kernel executes from only with MTD_XIP');
      const kernel = report.partitions.find((p) => p.content === 'kernel')!;
      const root = report.partitions.find((p) => p.content === 'rootfs')!;
      assert.equal(root.offset, kernel.offset + kernel.size, 'the root follows the kernel');
      assert.equal(root.offset % ctx.board.eraseSize, 0);
      assert.match(report.deviceTree.bootargs, /root=mtd:rootfs rootfstype=cramfs/);
      // The cramfs is in the chip as built (the image is pre-swapped for QEMU's loader: undo it).
      const image = new Uint8Array(readFileSync(ctx.imagePath));
      swapWords(image, ctx.board.loaderSwapBytes);
      const fs = new Uint8Array(readFileSync(rootfsImagePath(userspacePaths(ctx).dir)));
      assert.deepEqual(image.subarray(root.offset, root.offset + fs.length), fs);
      const read = readCramfs(fs);
      const bb = read.files.get('/bin/busybox');
      assert.ok(bb?.data && bb.data.length > 100_000, 'busybox in the root');
    });
  }

  for (const mem of [256, 16]) {
    it(`router-xip at -m ${mem}M: serves and powers off; busybox's code executes from the flash root (QEMU's view), is mapped from flash (no page-cache page), its data pages are in RAM`, async (t) => {
      const ctx = contextOf('router-xip');
      assert.ok(existsSync(ctx.imagePath), 'built by the first test');
      const root = readImageReport(ctx)!.partitions.find((p) => p.content === 'rootfs')!;
      const lo = ctx.board.flashPhys + root.offset;
      const hi = lo + root.size;
      const { code, data, maps, userPcs, boot } = await bootAndMap('router-xip', mem);
      // A mapping cramfs made with remap_pfn_range shows its physical address where the file offset would be.
      const text = maps.filter((m) => m.perms === 'r-xp');
      assert.equal(text.length, 1, JSON.stringify(maps));
      assert.ok(text[0]!.offset >= lo && text[0]!.offset < hi, `/proc/self/maps gives ${hex(text[0]!.offset)} for busybox's code, not an address in the root's flash ${hex(lo)}..${hex(hi)}`);
      // Seen from outside: where the CPU fetched busybox's code when QEMU stopped it in user mode.
      assert.ok(userPcs.length >= 3, `${userPcs.length} samples of the guest in busybox's code`);
      for (const x of userPcs) assert.ok(x.phys! >= lo && x.phys! < hi, `user PC ${hex(x.pc)} executes at ${hex(x.phys!)}, outside the root's flash ${hex(lo)}..${hex(hi)}`);
      assert.ok(code.length >= 16, `${code.length} code pages listed`);
      for (const p of code) assert.equal(p.phys, undefined, `code page ${hex(p.vaddr)} is a page at ${hex(p.phys ?? 0)}: not mapped from flash`);
      assert.ok(data.length >= 1, 'present data pages');
      for (const p of data) assert.ok(p.phys! < mem * 1024 * 1024, `data page ${hex(p.vaddr)} at ${hex(p.phys!)}, not in RAM`);
      t.diagnostic(`-m ${mem}M: ${userPcs.length} user PC samples, all in the flash root ${hex(lo)}..${hex(hi)}; ${code.length} code pages mapped from flash (VM_PFNMAP), ${data.length} data pages in RAM; ${boot.memoryLine}`);
    });
  }

  it('negative control, router-cramfs (all compressed) at -m 256M: the same code pages are in RAM, and execute there', async (t) => {
    const { code: all, userPcs } = await bootAndMap('router-cramfs', 256);
    assert.ok(userPcs.length >= 3, `${userPcs.length} samples of the guest in busybox's code`);
    for (const x of userPcs) assert.ok(x.phys! < 256 * 1024 * 1024, `user PC ${hex(x.pc)} executes at ${hex(x.phys!)}: not in RAM`);
    const code = all.filter((p) => p.phys !== undefined);
    assert.ok(code.length >= 16, `${code.length} present code pages`);
    for (const p of code) assert.ok(p.phys! < 256 * 1024 * 1024, `code page ${hex(p.vaddr)} at ${hex(p.phys!)}: not in RAM`);
    t.diagnostic(`${code.length} code pages and ${userPcs.length} user PC samples, all in RAM`);
  });
});

describe(`execution profile (${toolchain})`, { timeout: 30 * 60 * 1000 }, () => {
  it('xip profile records the pages the router used on router-cramfs; router-profiled keeps the code up to the last used page in place, and boots', async () => {
    let r = await xipLogged(['--toolchain', toolchain, 'profile'], 20 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const ctx = contextOf('router-profiled');
    const profile = readProfile(profilePath(ctx));
    const bb = profile.files['/bin/busybox'];
    assert.ok(bb && bb.pages.length > 16, `busybox pages used: ${bb?.pages.length}`);
    r = await cli('router-profiled', ['build'], 20 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli('router-profiled', ['image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const files = JSON.parse(readFileSync(join(userspacePaths(ctx).dir, 'rootfs-files.json'), 'utf8')) as Array<{ path: string; xipPages: number[] }>;
    const text = JSON.parse(readFileSync(join(userspacePaths(contextOf('router-xip')).dir, 'rootfs-files.json'), 'utf8')) as Array<{ path: string; xipPages: number[] }>;
    const inPlace = files.find((f) => f.path === '/bin/busybox')!.xipPages;
    const allText = text.find((f) => f.path === '/bin/busybox')!.xipPages;
    const last = Math.max(...allText.filter((p) => bb.pages.includes(p)));
    assert.deepEqual(inPlace, allText.filter((p) => p <= last), 'in place: the code up to the last page the profile saw used');
    const { userPcs } = await bootAndMap('router-profiled', 16);
    assert.ok(userPcs.length >= 1, 'the guest ran busybox code');
  });
});
