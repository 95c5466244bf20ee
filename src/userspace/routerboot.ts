import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import type { Board } from '../boards/index.ts';
import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { debug } from '../log.ts';
import { boot, type BootResult } from '../qemu/runner.ts';
import type { BootSession } from './profiles.ts';
import { ROUTER_MARKERS } from './router.ts';

/**
 * Boot the router image in QEMU with user networking, talk to it over HTTP
 * from the host and power it off through its CGI. The only address ever
 * contacted is 127.0.0.1: QEMU forwards a free loopback port to the guest's
 * port 80, and the guest is restricted (restrict=on) so that it reaches
 * nothing beyond QEMU's own DHCP server.
 */

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
 * QEMU arguments of the router's NIC: the board's first NIC on user
 * networking, a port forward from the loopback port. The device is named
 * with an empty romfile: its option ROM (ipxe-qemu) is never needed.
 */
export function routerNicArgs(board: Board, hostPort: number): string[] {
  if (!Number.isInteger(hostPort) || hostPort <= 0 || hostPort > 65535) throw badInput(`port ${hostPort}: not a TCP port`);
  const { model, slots } = board.qemu.nic;
  return [
    '-netdev',
    `user,id=eth0,restrict=on,hostfwd=tcp:${LOOPBACK}:${hostPort}-:80`,
    '-device',
    `${model},netdev=eth0,addr=${slots[0]},romfile=`,
  ];
}

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

export interface RouterBootOptions {
  memMiB: number;
  /** Whole boot, default 120 s. */
  timeoutMs?: number;
  /** How long to wait for LWRT-READY before giving up on HTTP (default: the boot timeout). */
  readyTimeoutMs?: number;
}

export interface RouterBootResult {
  boot: BootResult;
  port: number;
  ready: boolean;
  status?: HttpAnswer;
  page?: StatusPage;
  poweroff?: HttpAnswer;
  /** The first thing that went wrong on the HTTP side. */
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Boot ctx's image with the router NIC, fetch /cgi-bin/status, POST /cgi-bin/poweroff, wait for QEMU to end. */
export async function bootRouter(ctx: BuildContext, o: RouterBootOptions): Promise<RouterBootResult> {
  const file = ctx.variant === 'stock' ? ctx.vmlinux : ctx.imagePath;
  if (!existsSync(file)) throw badInput(`${file} not found: build it first (xip build && xip image)`);
  const timeoutMs = o.timeoutMs ?? 120_000;
  const port = await freeLoopbackPort();
  let ended = false;
  const running = boot({
    board: ctx.board,
    variant: ctx.variant,
    bios: ctx.variant === 'stock' ? undefined : ctx.imagePath,
    kernel: ctx.variant === 'stock' ? ctx.vmlinux : undefined,
    memMiB: o.memMiB,
    log: ctx.bootLog,
    timeoutMs,
    markers: [...ROUTER_MARKERS],
    extraArgs: routerNicArgs(ctx.board, port),
  }).finally(() => {
    ended = true;
  });
  const result: Omit<RouterBootResult, 'boot'> = { port, ready: false };
  try {
    // The runner streams the console to <log>.tmp while QEMU runs.
    const live = `${ctx.bootLog}.tmp`;
    const deadline = Date.now() + (o.readyTimeoutMs ?? timeoutMs);
    while (!ended && Date.now() < deadline) {
      if (existsSync(live) && readFileSync(live, 'utf8').includes('LWRT-READY')) {
        result.ready = true;
        break;
      }
      await sleep(200);
    }
    if (!result.ready) {
      result.error = ended ? 'QEMU ended before LWRT-READY' : 'no LWRT-READY on the console in time';
    } else {
      for (let attempt = 1; attempt <= 5 && !ended; attempt++) {
        try {
          result.status = await httpLoopback(port, '/cgi-bin/status', 'GET', 10_000);
          break;
        } catch (err) {
          debug(`status page, attempt ${attempt}: ${(err as Error).message}`);
          result.error = `GET /cgi-bin/status: ${(err as Error).message}`;
          await sleep(1000);
        }
      }
      if (result.status) {
        result.error = undefined;
        result.page = parseStatusPage(result.status.body);
        try {
          result.poweroff = await httpLoopback(port, '/cgi-bin/poweroff', 'POST', 10_000);
        } catch (err) {
          result.error = `POST /cgi-bin/poweroff: ${(err as Error).message}`;
        }
      }
    }
  } catch (err) {
    result.error = (err as Error).message;
  }
  // Without a power-off the runner's timeout ends QEMU (and the boot fails).
  return { ...result, boot: await running };
}

/**
 * A boot of the router for `xip boot` and measurements: its NIC on a free
 * loopback port, and once it prints LWRT-READY a POST to its power-off CGI
 * (a few tries while httpd comes up), so the boot ends with a clean power-off.
 */
export async function routerBootSession(board: Board): Promise<BootSession> {
  const port = await freeLoopbackPort();
  let closed = false;
  let asked = false;
  const askPowerOff = async () => {
    for (let attempt = 1; attempt <= 5 && !closed; attempt++) {
      try {
        await httpLoopback(port, '/cgi-bin/poweroff', 'POST', 10_000);
        return;
      } catch (err) {
        debug(`power-off request, attempt ${attempt}: ${(err as Error).message}`);
        await sleep(1000);
      }
    }
  };
  return {
    extraArgs: routerNicArgs(board, port),
    onLine(line) {
      if (!asked && line.includes('LWRT-READY')) {
        asked = true;
        void askPowerOff();
      }
    },
    close() {
      closed = true;
    },
  };
}
