import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../boards/index.ts';
import { DEFAULTS, makeContext, routerConfig, userspacePaths, type BuildContext, type Toolchain } from '../context.ts';
import { EXIT, XipError } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { readImageReport } from '../image/stage.ts';
import { info } from '../log.ts';
import { build, image, bootBuilt } from '../pipeline.ts';
import { renderTable, thousands } from '../text.ts';
import { getProfile } from '../userspace/profiles.ts';
import { PROFILE_WORKLOAD, recordProfile } from '../userspace/record.ts';
import { routerBootSession } from '../userspace/routerboot.ts';
import { bootAtKiB } from './index.ts';
import { findMinRam } from './minram.ts';

/**
 * Where the router's root filesystem lives, and what that costs in flash
 * and RAM: the same busybox and scripts as an initramfs (unpacked into RAM),
 * as cramfs in flash all compressed, and as cramfs in flash with the
 * programs' code stored for execution in place. Each is built, booted at
 * one RAM size with the status page read once LWRT-READY is printed, and
 * bisected for the smallest RAM at which it still boots, serves and powers
 * off (the router's boot session).
 */
export const ROOT_VARIANTS: ReadonlyArray<{ userspace: string; what: string }> = [
  { userspace: 'router', what: 'initramfs (in RAM)' },
  { userspace: 'router-cramfs', what: 'cramfs in flash, all compressed' },
  { userspace: 'router-xip', what: 'cramfs in flash, code in place' },
  { userspace: 'router-profiled', what: 'cramfs in flash, profiled code in place' },
];

export interface RootRow {
  userspace: string;
  what: string;
  /** Flash bytes of the root: the initramfs region in the kernel, or the cramfs partition's content. */
  rootBytes: number;
  /** Bytes of the root stored for execution in place (cramfs). */
  xipBytes: number;
  /** Flash used on the whole chip. */
  flashUsed: number;
  memMiB: number;
  memoryLine: string;
  /** /proc/meminfo after LWRT-READY, from the status page. */
  memAvailableKiB: number;
  memFreeKiB: number;
  /** Smallest RAM (KiB) at which it boots, serves and powers off; undefined when not searched. */
  minKiB?: number;
}

export interface RootResults {
  toolchain: Toolchain;
  config: string;
  measured: string;
  rows: RootRow[];
  commands: string[];
}

function rootBytesOf(ctx: BuildContext): { root: number; used: number; xip: number } {
  const r = readImageReport(ctx);
  if (!r) throw new XipError(`${ctx.variantDir}: no image report after the image stage`, { exitCode: EXIT.failed });
  const rd = r.layout.regions.find((x) => x.name === 'initramfs');
  const files = join(userspacePaths(ctx).dir, 'rootfs-files.json');
  const xip = r.rootfs && existsSync(files) ? (JSON.parse(readFileSync(files, 'utf8')) as Array<{ xipBytes: number }>).reduce((n, f) => n + f.xipBytes, 0) : 0;
  return { root: r.rootfs?.bytes ?? rd?.size ?? 0, used: r.layout.used, xip };
}

export async function measureRoots(o: { board: Pick<Board, 'name' | 'defconfigs'>; toolchain: Toolchain; memMiB?: number; minRam?: boolean }): Promise<RootResults> {
  const memMiB = o.memMiB ?? 16;
  const base = { board: o.board.name, config: routerConfig(o.board), variant: 'xip', toolchain: o.toolchain } as const;
  const rows: RootRow[] = [];
  for (const v of ROOT_VARIANTS) {
    const ctx = makeContext({ ...base, userspace: v.userspace });
    if (getProfile(v.userspace).flashRootfs?.xip === 'profile') {
      // Recorded again on this build's all-compressed root, so that it describes this busybox.
      info('rootfs: recording the execution profile on router-cramfs');
      await recordProfile(makeContext({ ...base, userspace: 'router-cramfs' }), 256);
    }
    info(`rootfs: ${v.userspace}: build and image`);
    await build(ctx);
    await image(ctx);
    const { root, used, xip } = rootBytesOf(ctx);
    const dir = join(ctx.variantDir, 'measure-rootfs');
    mkdirSync(dir, { recursive: true });
    const session = await routerBootSession(ctx, { checkStatus: true });
    const log = join(dir, `boot-${memMiB}M.log`);
    const b = await bootBuilt(ctx, { memMiB, log, timeoutMs: 150_000, session });
    const page = session.record.page;
    if (!b.ok || !page || page.memAvailableKiB === undefined || page.memFreeKiB === undefined) {
      throw new XipError(`${v.userspace} at ${memMiB} MiB: ${b.failure?.line ?? session.record.error ?? 'no status page'}; log ${log}`, { exitCode: EXIT.failed });
    }
    const row: RootRow = { userspace: v.userspace, what: v.what, rootBytes: root, xipBytes: xip, flashUsed: used, memMiB, memoryLine: b.memoryLine ?? '', memAvailableKiB: page.memAvailableKiB, memFreeKiB: page.memFreeKiB };
    if (o.minRam !== false) {
      info(`rootfs: ${v.userspace}: smallest RAM that boots, serves and powers off`);
      const res = await findMinRam(
        async (k) => {
          const l = join(dir, `minram-${k}K.log`);
          const r = await bootAtKiB(ctx, k, l, getProfile(v.userspace).bootTimeoutMs ?? 60_000);
          return { kib: k, ok: r.ok, failure: r.failure, memoryLine: r.memoryLine, log: l };
        },
        { loMiB: 0, hiMiB: 16, stepKiB: 64, onAttempt: (a) => info(`  ${v.userspace} -m ${a.kib}K: ${a.ok ? 'boots' : `fails (${a.failure?.kind})`}`) },
      );
      row.minKiB = res.minKiB;
    }
    rows.push(row);
  }
  return {
    toolchain: o.toolchain,
    config: base.config,
    measured: new Date().toISOString(),
    rows,
    commands: [
      `node bin/xip.mjs --toolchain ${o.toolchain} measure-rootfs --save`,
      `router-profiled: xip profile first (recorded on router-cramfs at 256 MiB: ${PROFILE_WORKLOAD})`,
      `each of ${ROOT_VARIANTS.map((v) => v.userspace).join(', ')}: build, image, boot at ${memMiB} MiB reading /cgi-bin/status after LWRT-READY, bisection over -m (whole MiB from 16 down, then 64 KiB)`,
    ],
  };
}

export function formatRoots(r: RootResults): string {
  const n = thousands;
  return renderTable(
    ['root', 'userspace', 'root bytes in flash', 'of it in place', 'flash used (chip)', `MemAvailable at ${r.rows[0]?.memMiB ?? '?'} MiB`, 'MemFree', 'minimum RAM'],
    r.rows.map((x) => [x.what, `\`${x.userspace}\``, n(x.rootBytes), n(x.xipBytes), n(x.flashUsed), `${n(x.memAvailableKiB)} kB`, `${n(x.memFreeKiB)} kB`, x.minKiB === undefined ? 'not searched' : `${n(x.minKiB)} KiB`]),
    { markdown: true, align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'] },
  );
}

/** bench/rootfs-<toolchain>.json of the default board; another board's name goes in front of the toolchain. */
export function rootResultsPath(repo: string, toolchain: Toolchain, board: string = DEFAULTS.board): string {
  return join(repo, 'bench', `rootfs-${board === DEFAULTS.board ? '' : `${board}-`}${toolchain}.json`);
}

export function saveRoots(r: RootResults, path: string): void {
  writeFileAtomic(path, `${JSON.stringify(r, null, 2)}\n`);
}

/** The saved results, if any (the README's table is made from them). */
export function readRoots(path: string): RootResults | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as RootResults) : undefined;
}
