import { FLASH_ROUTER_TOOLCHAIN } from '../src/userspace/router.ts';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { partitionOf } from '../src/boards/board.ts';
import { makeContext } from '../src/context.ts';
import { addCleanup } from '../src/proc.ts';
import { readSettings, writeSettings } from '../src/settings/format.ts';
import { bootBuilt } from '../src/pipeline.ts';
import { ROUTER_MARKERS, LWRT_READY } from '../src/userspace/markers.ts';
import { freeLoopbackPort, ROUTER_LAN_ADDR, routerAdminToken, routerNicArgs, routerNicDevices } from '../src/userspace/routerboot.ts';
import type { BootSession } from '../src/userspace/types.ts';
import { xipLogged } from './fixtures/cli.ts';

/**
 * The router end to end, from its flash image alone (router-xip, gcc: the
 * router config's compiler, docs/router.md), between network namespaces this
 * test makes and removes: QEMU runs in one (its two NICs are taps there,
 * each bridged to a veth), the WAN side in another (DHCP, DNS and HTTP
 * servers: test/fixtures/netpeer.ts), a LAN client in a third. The only
 * addresses used are inside those namespaces. Checked at 256 MiB and at 4
 * MiB, the router's minimum in whole MiB (`xip boot --mem 3` panics: "System
 * is deadlocked on memory"):
 *  1. the LAN client gets a lease from the router, with the router as DNS;
 *  2. it resolves the WAN's test name through the router and fetches a page
 *     from the WAN server, which sees the router's WAN address (NAT), and
 *     20 MB through NAT (the throughput goes to the test's output);
 *  3. from the WAN, TCP ports 1-1024 of the router are all filtered or
 *     closed and its admin page does not answer; from the LAN it does;
 *  4. power-off without or with a wrong token is refused from the LAN, and
 *     does not reach the router from the WAN even with the right token; with
 *     the token from the LAN it powers off (QEMU exits 0).
 * Needs root (ip netns, taps): without it the test fails in CI and is
 * skipped, saying so, elsewhere. Last, without namespaces: the LAN on a
 * VLAN (the setting lan_vlan) and power-off typed at the console's shell.
 * (The hosts here can tag no frames: their kernel has neither 8021q nor
 * bridge VLAN filtering, so no tagged traffic is exchanged.)
 */
const config = 'lwrt_qemu_malta_defconfig';
const toolchain = FLASH_ROUTER_TOOLCHAIN;
const userspace = 'router-xip';
const ctx = makeContext({ config, variant: 'xip', toolchain, userspace });
const cli = (args: string[], timeoutMs: number) => xipLogged(['--config', config, '--toolchain', toolchain, '--userspace', userspace, ...args], timeoutMs);
const isRoot = process.getuid?.() === 0;
const inCi = process.env.CI === 'true' || process.env.CI === '1';

const WAN_ADDR = '10.99.0.1';
const WAN_LEASE = '10.99.0.2';
const NAME = 'test.lwrt.example';
const PEER = join(import.meta.dirname, 'fixtures', 'netpeer.ts');

function sh(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Namespaces of an earlier run of this test whose process is gone (killed before its cleanup ran). */
function removeStale(): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const m of list.matchAll(/^(xip[rwl]-(\d+)-\d+)\b/gm)) {
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      alive = false;
    }
    if (!alive) spawnSync('ip', ['netns', 'del', m[1]!], { stdio: 'ignore' });
  }
}

/** Three namespaces: the router's (taps + bridges), the WAN's and the LAN client's; removed by the returned function. */
function makeNetwork(tag: string): { ns: { router: string; wan: string; lan: string }; remove: () => void } {
  const ns = { router: `xipr-${tag}`, wan: `xipw-${tag}`, lan: `xipl-${tag}` };
  let forget: () => void = () => undefined;
  const remove = () => {
    for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    forget();
  };
  remove();
  removeStale();
  // Also when the test process is stopped by a signal (test/setup.ts runs the cleanups).
  forget = addCleanup(remove);
  try {
    for (const n of Object.values(ns)) sh(['ip', 'netns', 'add', n]);
    const inR = (...a: string[]) => sh(['ip', '-n', ns.router, ...a]);
    for (const [side, peer] of [['w', ns.wan], ['l', ns.lan]] as const) {
      inR('tuntap', 'add', 'dev', `t${side}`, 'mode', 'tap');
      inR('link', 'add', `b${side}`, 'type', 'bridge');
      inR('link', 'add', `v${side}0`, 'type', 'veth', 'peer', 'name', `v${side}1`);
      inR('link', 'set', `v${side}1`, 'netns', peer);
      for (const d of [`t${side}`, `v${side}0`]) inR('link', 'set', d, 'master', `b${side}`);
      for (const d of [`t${side}`, `v${side}0`, `b${side}`]) inR('link', 'set', d, 'up');
      sh(['ip', '-n', peer, 'link', 'set', 'lo', 'up']);
      sh(['ip', '-n', peer, 'link', 'set', `v${side}1`, 'up']);
    }
    sh(['ip', '-n', ns.wan, 'addr', 'add', `${WAN_ADDR}/24`, 'dev', 'vw1']);
    // Its DHCP server answers to the limited broadcast, which needs a route.
    sh(['ip', '-n', ns.wan, 'route', 'add', '255.255.255.255/32', 'dev', 'vw1']);
    // The LAN client has no address before its lease: its DHCP broadcasts go out of vl1.
    sh(['ip', '-n', ns.lan, 'route', 'add', '255.255.255.255/32', 'dev', 'vl1']);
  } catch (err) {
    remove();
    throw err;
  }
  return { ns, remove };
}

/** A copy of the image whose settings say lan_vlan=ID (the router then bridges eth1.ID, not eth1). */
function imageWithVlan(dir: string, vlan: number): string {
  const part = partitionOf(ctx.board.partitions, 'settings')!;
  const flash = new Uint8Array(readFileSync(ctx.imagePath));
  const old = flash.subarray(part.offset, part.offset + part.size);
  flash.set(writeSettings(old, ctx.board.eraseSize, { ...readSettings(old, ctx.board.eraseSize).settings, lan_vlan: String(vlan) }), part.offset);
  const file = join(dir, 'xip-bios-vlan.bin');
  writeFileSync(file, flash);
  return file;
}

interface Peer {
  proc: ChildProcess;
  events: Array<Record<string, unknown>>;
  done: Promise<number | null>;
}

function peer(ns: string, args: string[]): Peer {
  // stdin is a pipe from this process: a peer ends when it closes, also when the test process dies.
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let buf = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        events.push({ text: line });
      }
    }
  });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-2000)));
  const done = new Promise<number | null>((resolve) => proc.on('close', (code) => {
    if (code !== 0 && err) events.push({ stderr: err });
    resolve(code);
  }));
  return { proc, events, done };
}

const find = (p: Peer, key: string): Record<string, unknown> | undefined => p.events.find((e) => key in e);

async function waitFor(p: Peer, key: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!find(p, key) && Date.now() < end && p.proc.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  if (!find(p, key)) throw new Error(`peer never said ${key}: ${JSON.stringify(p.events)}`);
}

describe('router end to end between network namespaces (router-xip, gcc)', { timeout: 60 * 60 * 1000 }, () => {
  it('builds the router-xip image', { skip: !isRoot && !inCi ? 'needs root (ip netns, tap devices): run make test as root' : false }, async () => {
    assert.ok(isRoot, 'the end-to-end network test needs root (network namespaces and taps); CI runs as root');
    let r = await cli(['build'], 40 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli(['image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
  });

  for (const mem of [256, 4]) {
    it(`at -m ${mem}M: LAN lease and DNS from the router, NAT to the WAN, nothing open from the WAN, power-off only with the token from the LAN`, { skip: !isRoot && !inCi ? 'needs root' : false }, async () => {
      assert.ok(isRoot, 'needs root');
      assert.ok(existsSync(ctx.imagePath), 'built by the first test');
      const token = routerAdminToken(ctx);
      const { ns, remove } = makeNetwork(`${process.pid}-${mem}`);
      const peers: Peer[] = [];
      try {
        const wan = peer(ns.wan, ['wan', WAN_ADDR, WAN_LEASE, NAME]);
        peers.push(wan);
        await waitFor(wan, 'ready', 30_000);
        let lan: Peer | undefined;
        let scan: Peer | undefined;
        let talking: Promise<void> = Promise.resolve();
        const session: BootSession = {
          extraArgs: [
            '-netdev',
            'tap,id=wan,ifname=tw,script=no,downscript=no',
            '-netdev',
            'tap,id=lan,ifname=tl,script=no,downscript=no',
            ...routerNicDevices(ctx.board, ['wan', 'lan']),
          ],
          onLine(line) {
            if (!line.includes(LWRT_READY) || scan) return;
            // From the WAN first (the router must not answer there), then the LAN client, whose last step powers off.
            scan = peer(ns.wan, ['scan', WAN_LEASE, token]);
            peers.push(scan);
            talking = scan.done.then(() => {
              lan = peer(ns.lan, ['lan', 'vl1', NAME, ROUTER_LAN_ADDR, token]);
              peers.push(lan);
              return lan.done.then(() => undefined);
            });
          },
          async close() {
            await talking;
          },
        };
        const boot = await bootBuilt(ctx, { memMiB: mem, timeoutMs: 240_000, session, netns: ns.router, log: join(ctx.variantDir, `network-${mem}.log`) });
        const why = `log ${boot.log}\n${(boot.tail ?? []).join('\n')}\nwan: ${JSON.stringify(wan.events)}\nscan: ${JSON.stringify(scan?.events)}\nlan: ${JSON.stringify(lan?.events)}`;
        assert.ok(scan && lan, `the router never printed ${LWRT_READY}: ${why}`);
        // 3. From the WAN: nothing open, the admin page and the power-off do not answer.
        const s = find(scan, 'scan');
        assert.ok(s, why);
        assert.deepEqual(s.open, [], `open TCP ports from the WAN: ${why}`);
        assert.equal(Number(s.refused) + Number(s.filtered), 1024, why);
        const wanHttp = scan.events.filter((e) => 'wanHttp' in e);
        assert.equal(wanHttp.length, 2, why);
        for (const e of wanHttp) assert.ok('error' in e, `the router answered ${String(e.wanHttp)} from the WAN: ${why}`);
        // 1. The lease, with the router as DNS server and gateway.
        const lease = find(lan, 'lease')?.lease as { address: string; router: string; dns: string } | undefined;
        assert.ok(lease, why);
        assert.match(lease.address, /^192\.168\.1\.(1\d\d)$/, why);
        assert.equal(lease.dns, ROUTER_LAN_ADDR, why);
        assert.equal(lease.router, ROUTER_LAN_ADDR, why);
        // 2. The name through the router's forwarder; the page through NAT, seen from the router's WAN address.
        assert.deepEqual(find(lan, 'resolved')?.resolved, [WAN_ADDR], why);
        assert.ok(wan.events.some((e) => e.dns === NAME && e.from === WAN_LEASE), `the WAN's DNS server saw no query from the router: ${why}`);
        assert.equal(find(lan, 'whoami')?.whoami, WAN_LEASE, `the server saw another source than the router's WAN address: ${why}`);
        const t = find(lan, 'transfer');
        assert.ok(t, why);
        assert.equal(t.transfer, 20_000_000, why);
        const mbps = 20 / (Number(t.ms) / 1000);
        process.stdout.write(`# router at ${mem} MiB: 20 MB LAN <- WAN through NAT in ${t.ms} ms (${mbps.toFixed(2)} MB/s); WAN scan of 1024 ports: ${String(s.refused)} closed, ${String(s.filtered)} filtered in ${String(s.ms)} ms\n`);
        // 3. From the LAN the status page answers; 4. power-off needs the token.
        assert.equal(find(lan, 'statusPage')?.statusPage, 200, why);
        assert.equal(find(lan, 'statusPage')?.hasRelease, true, why);
        assert.equal(find(lan, 'poweroffNoToken')?.poweroffNoToken, 403, why);
        assert.equal(find(lan, 'poweroffNoToken')?.poweroffWrongToken, 403, why);
        assert.equal(find(lan, 'poweroff')?.poweroff, 200, why);
        assert.ok(find(lan, 'done'), why);
        assert.deepEqual(boot.markersSeen, [...ROUTER_MARKERS], why);
        assert.ok(boot.ok, `${boot.failure?.kind ?? ''}: ${boot.failure?.line ?? ''}\n${why}`);
        assert.equal(boot.exitCode, 0, why);
        const log = readFileSync(boot.log!, 'utf8');
        assert.match(log, /LWRT-DHCPD: 192\.168\.1\.100-192\.168\.1\.199 on br-lan/);
        assert.match(log, /LWRT-LAN: br-lan 192\.168\.1\.1\/24 port eth1\s/);
      } finally {
        for (const p of peers) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
        await Promise.all(peers.map((p) => p.done));
        remove();
      }
    });
  }

  it('at -m 16M with the setting lan_vlan=7: the LAN bridge takes eth1.7 (802.1Q); poweroff typed at the console shell powers off', async () => {
    let r = await cli(['build'], 40 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli(['image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const tmp = mkdtempSync(join(tmpdir(), 'xip-vlan-'));
    try {
      const image = imageWithVlan(tmp, 7);
      // QEMU's user networking only, and no HTTP: the console is the way in.
      const session: BootSession = { extraArgs: routerNicArgs(ctx.board, await freeLoopbackPort()), onLine: () => undefined, close: async () => undefined };
      const boot = await bootBuilt(ctx, { memMiB: 16, timeoutMs: 120_000, session, image, dialog: [{ expect: LWRT_READY, send: 'poweroff\n' }], log: join(ctx.variantDir, 'vlan-console.log') });
      const log = readFileSync(boot.log!, 'utf8');
      const why = `log ${boot.log}\n${(boot.tail ?? []).join('\n')}`;
      assert.match(log, /LWRT-LAN: br-lan 192\.168\.1\.1\/24 port eth1\.7\s/, why);
      assert.doesNotMatch(log, /no VLAN|no LAN port/, why);
      assert.match(log, /LWRT-POWEROFF: requested on the console/, why);
      assert.deepEqual(boot.markersSeen, [...ROUTER_MARKERS], why);
      assert.ok(boot.ok, `${boot.failure?.kind ?? ''}: ${boot.failure?.line ?? ''}\n${why}`);
      assert.equal(boot.exitCode, 0, why);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
