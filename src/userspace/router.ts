import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { info } from '../log.ts';
import type { Hasher } from '../stamp.ts';
import { busyboxKey, configFragmentPath, ensureBusybox, lwrtDir, pinPath, type BusyboxInfo } from './busybox.ts';
import { KERNEL_MARKERS, ROUTER_MARKERS } from './markers.ts';
import type { BootExpectation, UserspaceBuild } from './types.ts';
import { rootfsEntries, rootfsListing } from './rootfs.ts';
import { ADMIN_TOKEN_FILE, routerBootSession } from './routerboot.ts';
import { mkcramfs } from './cramfs.ts';
import { FLASH_ROOT_INITRAMFS, rootfsImagePath, xipPagesOf, type XipPolicy } from './flashroot.ts';
import { buildFreestanding, hashToolchainAndBoard } from './program.ts';
import { profiledPages, profilePath, readProfile } from './xipprofile.ts';

/**
 * Two userspace profiles of the router config:
 *  - 'router' (its default): busybox built from Debian's source package
 *    (src/userspace/busybox.ts) plus our scripts in userspace/lwrt/rootfs/
 *    (init, udhcpc event script, httpd status and power-off CGIs), staged
 *    as a directory and embedded like any staged rootfs;
 *  - 'rootfs': any directory the user staged (LWRT_ROOTFS=DIR, --lwrt-rootfs).
 */


/** Directories every router rootfs has (mount points and applet homes). */
const ROUTER_DIRS = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'var', 'root'];

export function overlayDir(repo: string): string {
  return join(lwrtDir(repo), 'rootfs');
}

/** Copy a tree (dirs, files with their modes, symlinks as they are) into dest. */
export function copyTree(src: string, dest: string): void {
  mkdirSync(dest, { recursive: true });
  for (const name of readdirSync(src).sort()) {
    const s = join(src, name);
    const d = join(dest, name);
    const st = lstatSync(s);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(s), d);
    else if (st.isDirectory()) {
      copyTree(s, d);
      chmodSync(d, st.mode & 0o7777);
    } else if (st.isFile()) {
      copyFileSync(s, d);
      chmodSync(d, st.mode & 0o7777);
    } else throw badInput(`${s}: only directories, files and symlinks belong in ${relative(process.cwd(), src) || src}`);
  }
}

/** Stage the router rootfs in dir (replaced whole): busybox, its applet links, our overlay. */
export function stageRouterRootfs(dir: string, busybox: string, bb: BusyboxInfo, overlay: string): void {
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    for (const d of ROUTER_DIRS) mkdirSync(join(tmp, d), { recursive: true });
    copyFileSync(busybox, join(tmp, 'bin', 'busybox'));
    chmodSync(join(tmp, 'bin', 'busybox'), 0o755);
    for (const a of bb.applets) {
      const rel = a.replace(/^\/+/, '');
      if (rel === 'bin/busybox') continue;
      mkdirSync(join(tmp, dirname(rel)), { recursive: true });
      symlinkSync('/bin/busybox', join(tmp, rel));
    }
    copyTree(overlay, tmp);
    const release = [
      'NAME=LWRT',
      `BUSYBOX_VERSION=${bb.version}`,
      `BUSYBOX_DEBIAN_SOURCE="${bb.source.package} ${bb.source.version}"`,
      `BUSYBOX_SHA256=${bb.sha256}`,
      `LIBC="${bb.libc.package} ${bb.libc.version} ${bb.libc.arch} (Debian source, static)"`,
      '',
    ].join('\n');
    writeFileAtomic(join(tmp, 'etc', 'lwrt-release'), release);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The router's own programs (docs/router.md), each freestanding and
 * executed in place like xset: the firewall loader (nf_tables netlink) and
 * the LAN's DNS forwarder. busybox's udhcpd hands out the LAN's addresses.
 */
export function routerPrograms(repo: string): Array<{ name: string; source: string }> {
  return ['fw', 'dnsfwd'].map((name) => ({ name, source: join(repo, 'userspace', 'lwrt', 'tools', `${name}.c`) }));
}

/** What the router's own programs besides busybox are built from (stamp inputs). */
function hashRouterPrograms(h: Hasher, ctx: BuildContext): void {
  const t = flashRootTools(ctx.repo);
  hashToolchainAndBoard(h, ctx);
  for (const p of routerPrograms(ctx.repo)) h.file(`${p.name}.c`, p.source);
  h.file('sys.h', t.header);
  h.file('tools.lds', t.toolsLds);
}

/** Into a staged router root: the router's own programs, in /usr/sbin. */
async function stageRouterPrograms(ctx: BuildContext, staged: string): Promise<void> {
  for (const p of routerPrograms(ctx.repo)) {
    await buildFreestanding(ctx, { what: p.name, sources: [p.source], lds: flashRootTools(ctx.repo).toolsLds }, join(staged, 'usr', 'sbin', p.name));
  }
}

export const routerBuild: UserspaceBuild = {
  name: 'router',
  description: 'LWRT router: busybox (Debian source, musl, static), an nf_tables firewall and a DNS forwarder + userspace/lwrt/rootfs: WAN DHCP, LAN bridge with DHCP (udhcpd) and DNS, NAT, httpd status page on the LAN',
  inputs(h: Hasher, ctx: BuildContext) {
    hashRouterPrograms(h, ctx);
    h.value('busybox-key', busyboxKey(ctx.repo, ctx.board.crossCompile, ctx.board.cpuFlags));
    h.file('busybox.json', pinPath(ctx.repo));
    h.file('busybox.config', configFragmentPath(ctx.repo));
    h.tree('userspace/lwrt/rootfs', overlayDir(ctx.repo));
    h.value('rootfs-listing', rootfsListing(rootfsEntries(overlayDir(ctx.repo), { what: 'userspace/lwrt/rootfs' })));
  },
  async build(ctx, dir) {
    const bb = await ensureBusybox(ctx);
    const staged = join(dir, 'rootfs');
    stageRouterRootfs(staged, bb.binary, bb.info, overlayDir(ctx.repo));
    await stageRouterPrograms(ctx, staged);
    // No settings partition in reach of an initramfs router: its admin token
    // (power-off over HTTP) is made at random for each build, in the image.
    const token = `${randomBytes(12).toString('hex')}\n`;
    writeFileAtomic(join(staged, 'etc', ADMIN_TOKEN_FILE), token, 0o600);
    writeFileAtomic(join(dir, ADMIN_TOKEN_FILE), token, 0o600);
    writeFileAtomic(join(dir, 'busybox.json'), `${JSON.stringify(bb.info, null, 2)}\n`);
    info(`busybox ${bb.info.version} from Debian source ${bb.info.source.version}: ${bb.info.size} bytes, sha256 ${bb.info.sha256}`);
    return rootfsEntries(staged, { what: 'router rootfs' });
  },
};

/** A router boot gets its NIC and, once it is ready, a power-off request over HTTP (routerboot.ts). */
export const routerBoot: BootExpectation = {
  markers: ROUTER_MARKERS,
  bootTimeoutMs: 120_000,
  bootSession: (ctx) => routerBootSession(ctx),
};

/** The directory of the 'rootfs' profile: ctx.rootfs (LWRT_ROOTFS / --lwrt-rootfs). */
export function stagedRootfsDir(ctx: BuildContext): string {
  const dir = ctx.rootfs;
  if (dir === undefined) {
    throw badInput(`userspace 'rootfs' embeds a staged directory: give it with LWRT_ROOTFS=DIR (or --lwrt-rootfs DIR)`);
  }
  return dir;
}

export const rootfsBuild: UserspaceBuild = {
  name: 'rootfs',
  description: 'any staged rootfs directory (LWRT_ROOTFS=DIR): dirs, files with modes, symlinks, plus /dev/console and /dev/null',
  inputs(h, ctx) {
    const dir = stagedRootfsDir(ctx);
    // Names, types, full modes and link targets (this also checks the tree), then contents.
    h.value('rootfs-listing', rootfsListing(rootfsEntries(dir)));
    h.tree('rootfs', dir);
    h.value('rootfs-dir', dir);
  },
  async build(ctx) {
    const dir = stagedRootfsDir(ctx);
    const entries = rootfsEntries(dir);
    if (!existsSync(join(dir, 'init'))) {
      info(`note: ${dir} has no /init: the kernel will look for /sbin/init, /etc/init, /bin/init, /bin/sh`);
    }
    return entries;
  },
};

export const rootfsBoot: BootExpectation = { markers: KERNEL_MARKERS };

/**
 * The router with its root filesystem in flash (cramfs, flashroot.ts)
 * instead of an initramfs in RAM: the same busybox and scripts, staged the
 * same way. 'router-xip' stores the executable pages of its programs
 * uncompressed and page-aligned, so they run in place from flash;
 * 'router-cramfs' compresses everything (what a root in flash costs
 * without user-space XIP: every page that runs is copied into RAM);
 * 'router-profiled' stores in place only the code pages an execution
 * profile saw used (xipprofile.ts). Each also gets the guest tool
 * /usr/sbin/resident, /usr/sbin/xset (the settings, docs/settings.md) and
 * the CGIs of userspace/lwrt/flashroot/; `resident` is what
 * `xip profile` reads.
 */
export function flashRootTools(repo: string): { resident: string; xset: string; header: string; lds: string; toolsLds: string; overlay: string } {
  return {
    resident: join(repo, 'userspace', 'lwrt', 'tools', 'resident.c'),
    // The settings tool (docs/settings.md): /usr/sbin/xset.
    xset: join(repo, 'userspace', 'lwrt', 'tools', 'xset.c'),
    // The system calls and output helpers it shares with the stress programs.
    header: join(repo, 'userspace', 'stress', 'sys.h'),
    lds: join(repo, 'userspace', 'init.lds'),
    // xset runs at every boot: its code in a read-only segment of its own, executed in place like busybox's.
    toolsLds: join(repo, 'userspace', 'lwrt', 'tools', 'tools.lds'),
    overlay: join(repo, 'userspace', 'lwrt', 'flashroot'),
  };
}

function flashRouter(name: string, xip: XipPolicy, description: string): UserspaceBuild {
  return {
    name,
    description,
    flashRootfs: { xip },
    inputs(h, ctx) {
      routerBuild.inputs(h, ctx);
      h.value('xip-policy', xip);
      const t = flashRootTools(ctx.repo);
      h.file('resident.c', t.resident);
      h.file('xset.c', t.xset);
      h.file('sys.h', t.header);
      h.file('init.lds', t.lds);
      h.file('tools.lds', t.toolsLds);
      h.tree('userspace/lwrt/flashroot', t.overlay);
      h.value('flashroot-listing', rootfsListing(rootfsEntries(t.overlay, { what: 'userspace/lwrt/flashroot' })));
      if (xip === 'profile') h.file('xip-profile', profilePath(ctx));
    },
    async build(ctx, dir) {
      const bb = await ensureBusybox(ctx);
      const staged = join(dir, 'rootfs');
      stageRouterRootfs(staged, bb.binary, bb.info, overlayDir(ctx.repo));
      await stageRouterPrograms(ctx, staged);
      const t = flashRootTools(ctx.repo);
      await buildFreestanding(ctx, { what: 'resident', sources: [t.resident], lds: t.lds }, join(staged, 'usr', 'sbin', 'resident'));
      await buildFreestanding(ctx, { what: 'xset', sources: [t.xset], lds: t.toolsLds }, join(staged, 'usr', 'sbin', 'xset'));
      copyTree(t.overlay, staged);
      const fs = mkcramfs(rootfsEntries(staged, { what: 'router rootfs' }), {
        endian: ctx.board.endian,
        name: 'lwrt',
        xipPages: xip === 'profile' ? profiledPages(readProfile(profilePath(ctx)), profilePath(ctx)) : xipPagesOf(xip),
      });
      writeFileAtomic(rootfsImagePath(dir), fs.image);
      writeFileAtomic(join(dir, 'rootfs-files.json'), `${JSON.stringify(fs.files, null, 2)}\n`);
      const xipBytes = fs.files.reduce((n, f) => n + f.xipBytes, 0);
      info(`cramfs root: ${fs.image.length} bytes, ${fs.files.length} files, ${xipBytes} bytes stored for execution in place (${xip})`);
      return [...FLASH_ROOT_INITRAMFS];
    },
  };
}

export const routerXipBuild = flashRouter(
  'router-xip',
  'text',
  'LWRT router with its root in flash (cramfs over MTD): programs execute in place from flash, the rest compressed',
);
export const routerProfiledBuild = flashRouter(
  'router-profiled',
  'profile',
  'LWRT router with its root in flash (cramfs over MTD): only the code pages an execution profile saw used execute in place (xip profile)',
);
/**
 * The control of the settings test: router-xip with MTD_XIP off, so the
 * CFI driver's probe, program and erase run from the flash they command.
 * Its boot must hang at the probe of the settings partition (the chip
 * answers CFI queries where the kernel's instructions were); if it boots,
 * the settings test proves nothing.
 */
export const routerUnsafeBuild: UserspaceBuild = {
  ...flashRouter('router-unsafe', 'text', 'control: router-xip with MTD_XIP off (the flash write path runs from the chip it commands): its boot must hang'),
  kconfig: '# CONFIG_MTD_XIP is not set\n',
};
export const routerCramfsBuild = flashRouter(
  'router-cramfs',
  'none',
  'LWRT router with its root in flash (cramfs over MTD), all compressed: programs are read into RAM to run',
);

/**
 * The compiler of the router with its root in flash: gcc, whose MIPS code
 * is the smaller (docs/router.md has the numbers). With the router's
 * netfilter, clang's kernel leaves too little flash for the root's
 * power-of-two map before the settings partition; the router config is
 * still built and booted with clang as an initramfs image
 * (test/integration-router.test.ts).
 */
export const FLASH_ROUTER_TOOLCHAIN = 'gcc' as const;
