import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { partitionOf, qemuOf } from '../boards/board.ts';
import type { Board } from '../boards/index.ts';
import { userspacePaths, type BuildContext } from '../context.ts';
import { readSettings } from '../settings/format.ts';
import { badInput } from '../errors.ts';
import { debug } from '../log.ts';
import { LWRT_READY } from './markers.ts';
import type { BootSession } from './types.ts';

/**
 * The host side of a router boot: QEMU user networking for its two NICs
 * (WAN and LAN), and HTTP to it from the host on the LAN side (its status
 * page, its power-off CGI with the image's admin token). The boot itself is
 * the one every profile gets (bootBuilt in src/pipeline.ts, the QEMU
 * runner), which streams the console to this session. The only address
 * ever contacted is 127.0.0.1: QEMU forwards a free loopback port to the
 * router's LAN address, port 80, and both networks are restricted
 * (restrict=on) so that the guest reaches nothing beyond QEMU's own DHCP
 * server. The end-to-end network test (test/integration-network.test.ts)
 * uses tap devices in network namespaces instead.
 */

/** The router's LAN address unless its settings say otherwise (lan_addr, userspace/lwrt/rootfs/init). */
export const ROUTER_LAN_ADDR = '192.168.1.1';

export const LOOPBACK = '127.0.0.1';

/** A free TCP port on the loopback interface (bind port 0, read it, close). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from the kernel'))));
    });
  });
}

/**
 * The QEMU device arguments of the router's two NICs (eth0 the WAN, eth1
 * the LAN) on the given netdevs: the board's NIC model in its first two
 * slots, with an empty romfile (their option ROM, ipxe-qemu, is never
 * needed).
 */
export function routerNicDevices(board: Board, netdevs: readonly [string, string]): string[] {
  const { model, slots } = qemuOf(board).nic;
  if (slots.length < 2) throw badInput(`board ${board.name}: the router needs two NICs (WAN and LAN); its qemu.nic.slots lists ${slots.length}`);
  return netdevs.flatMap((id, i) => ['-device', `${model},netdev=${id},addr=${slots[i]},romfile=`]);
}

/**
 * QEMU arguments of the router's NICs on user networking: the WAN gets
 * QEMU's DHCP; the LAN is 192.168.1.0/24 with QEMU's side at .2, and the
 * loopback port is forwarded to the router's LAN address, port 80.
 */
export function routerNicArgs(board: Board, hostPort: number): string[] {
  if (!Number.isInteger(hostPort) || hostPort <= 0 || hostPort > 65535) throw badInput(`port ${hostPort}: not a TCP port`);
  const lanNet = ROUTER_LAN_ADDR.replace(/\.\d+$/, '');
  return [
    '-netdev',
    'user,id=wan,restrict=on',
    '-netdev',
    `user,id=lan,restrict=on,net=${lanNet}.0/24,host=${lanNet}.2,dns=${lanNet}.3,dhcpstart=${lanNet}.240,hostfwd=tcp:${LOOPBACK}:${hostPort}-${ROUTER_LAN_ADDR}:80`,
    ...routerNicDevices(board, ['wan', 'lan']),
  ];
}

/**
 * The admin token of a built router image: on the settings partition of a
 * root-in-flash image, else the one its initramfs was built with
 * (userspace/admin_token of the build).
 */
export function routerAdminToken(ctx: BuildContext): string {
  const file = join(userspacePaths(ctx).dir, ADMIN_TOKEN_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const part = partitionOf(ctx.board.partitions, 'settings');
  if (part === undefined || !existsSync(ctx.imagePath)) throw badInput(`no admin token for ${ctx.variantDir}: build the router image first (xip build, xip image)`);
  const flash = new Uint8Array(readFileSync(ctx.imagePath)).subarray(part.offset, part.offset + part.size);
  const token = readSettings(flash, ctx.board.eraseSize).settings.admin_token;
  if (!token) throw badInput(`${ctx.imagePath}: its settings partition has no admin_token: assemble the image again (xip image)`);
  return token;
}

/** Name of the token file in a router build's userspace directory (and /etc/admin_token in its initramfs). */
export const ADMIN_TOKEN_FILE = 'admin_token';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One HTTP request to 127.0.0.1:port (never anything else). */
export function httpLoopback(port: number, path: string, method: 'GET' | 'POST', timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: LOOPBACK, port, path, method, timeout: timeoutMs, headers: { Connection: 'close', 'Content-Length': '0' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${LOOPBACK}:${port}${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** What the status page says, read from its element ids. */
export interface StatusPage {
  kernelRelease?: string;
  kernelBuild?: string;
  machine?: string;
  uptimeSeconds?: number;
  memTotalKiB?: number;
  memFreeKiB?: number;
  memAvailableKiB?: number;
  addresses: string;
  routes: string;
}

function unescapeHtml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function field(html: string, id: string): string | undefined {
  const m = new RegExp(`id="${id}">([^<]*)<`).exec(html);
  return m?.[1] === undefined ? undefined : unescapeHtml(m[1]).trim();
}

function num(v: string | undefined, unit: string): number | undefined {
  if (v === undefined) return undefined;
  const m = new RegExp(`^(\\d+(?:\\.\\d+)?) ${unit}$`).exec(v);
  return m ? Number(m[1]) : undefined;
}

export function parseStatusPage(html: string): StatusPage {
  return {
    kernelRelease: field(html, 'kernel-release'),
    kernelBuild: field(html, 'kernel-build'),
    machine: field(html, 'machine'),
    uptimeSeconds: num(field(html, 'uptime'), 's'),
    memTotalKiB: num(field(html, 'mem-total'), 'kB'),
    memFreeKiB: num(field(html, 'mem-free'), 'kB'),
    memAvailableKiB: num(field(html, 'mem-available'), 'kB'),
    addresses: field(html, 'addresses') ?? '',
    routes: field(html, 'routes') ?? '',
  };
}

/** The kernel release the build recorded (what `uname -r` must say): kbuild/include/config/kernel.release. */
export function builtKernelRelease(ctx: BuildContext): string {
  const p = `${ctx.kbuildDir}/include/config/kernel.release`;
  if (!existsSync(p)) throw badInput(`${p} not found: build the kernel first (xip build)`);
  return readFileSync(p, 'utf8').trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One request to the router on 127.0.0.1:port, tried again while httpd
 * comes up: the answer, or the last error's message ('QEMU ended first'
 * when `stopped` says so before any try).
 */
export async function requestWithRetries(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  o: { tries: number; gapMs: number; stopped?: () => boolean },
): Promise<HttpAnswer | string> {
  let last = 'QEMU ended first';
  for (let attempt = 1; attempt <= o.tries && !o.stopped?.(); attempt++) {
    try {
      return await httpLoopback(port, path, method, 10_000);
    } catch (err) {
      last = (err as Error).message;
      debug(`${method} ${path}, attempt ${attempt}: ${last}`);
      if (attempt < o.tries) await sleep(o.gapMs);
    }
  }
  return last;
}

export interface RouterSessionOptions {
  /** Before the power-off, GET /cgi-bin/status and keep it (the router test asserts on the page). */
  checkStatus?: boolean;
  /** Before the power-off, GET /cgi-bin/pages (where busybox's pages are: flash or RAM) and keep it. */
  checkPages?: boolean;
  /** Last before the power-off, GET /cgi-bin/resident (the page-cache pages of each program: xip profile) and keep it. */
  checkResident?: boolean;
}

/** What the host side of a router boot saw and did; complete once its close() has resolved. */
export interface RouterSessionRecord {
  /** The loopback port forwarded to the guest's port 80. */
  port: number;
  /** The guest printed LWRT-READY. */
  ready: boolean;
  status?: HttpAnswer;
  page?: StatusPage;
  pages?: HttpAnswer;
  resident?: HttpAnswer;
  poweroff?: HttpAnswer;
  /** The first thing that went wrong on the HTTP side. */
  error?: string;
}

export interface RouterBootSession extends BootSession {
  readonly record: RouterSessionRecord;
}

/** Tries of each request while httpd comes up, a second apart. */
const TRIES = 5;

/**
 * The host side of a router boot, for `xip boot`, the measurements and the
 * router test alike: its NIC on a free loopback port, and once the runner
 * streams LWRT-READY (optionally a GET of the status page, then) a POST to
 * its power-off CGI, so the boot ends with a clean power-off. Without an
 * answer the runner's timeout ends QEMU, and the boot fails.
 */
export async function routerBootSession(ctx: BuildContext, o: RouterSessionOptions = {}): Promise<RouterBootSession> {
  const board = ctx.board;
  const token = routerAdminToken(ctx);
  const port = await freeLoopbackPort();
  const record: RouterSessionRecord = { port, ready: false };
  let closed = false;
  let talking: Promise<void> = Promise.resolve();
  const request = async (method: 'GET' | 'POST', path: string): Promise<HttpAnswer | undefined> => {
    const r = await requestWithRetries(port, method, path, { tries: TRIES, gapMs: 1000, stopped: () => closed });
    if (typeof r !== 'string') return r;
    record.error ??= `${method} ${path}: ${r}`;
    return undefined;
  };
  const talk = async () => {
    if (o.checkStatus) {
      record.status = await request('GET', '/cgi-bin/status');
      if (record.status) record.page = parseStatusPage(record.status.body);
    }
    if (o.checkPages) record.pages = await request('GET', '/cgi-bin/pages');
    if (o.checkResident) record.resident = await request('GET', '/cgi-bin/resident');
    record.poweroff = await request('POST', `/cgi-bin/poweroff?token=${token}`);
  };
  return {
    record,
    extraArgs: routerNicArgs(board, port),
    onLine(line) {
      if (record.ready || !line.includes(LWRT_READY)) return;
      record.ready = true;
      talking = talk().catch((err: unknown) => {
        record.error ??= `router session: ${(err as Error).message}`;
      });
    },
    async close() {
      closed = true;
      await talking;
      if (!record.ready) record.error ??= `QEMU ended before ${LWRT_READY}`;
    },
  };
}
