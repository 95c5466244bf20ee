import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeContext, userspacePaths } from '../src/context.ts';
import { bootBuilt } from '../src/pipeline.ts';
import { HIDE_FIRMWARE_ENV } from '../src/qemu/firmware.ts';
import { ROUTER_MARKERS } from '../src/userspace/markers.ts';
import { bootExpectation } from '../src/userspace/profiles.ts';
import { ADMIN_TOKEN_FILE, routerBootSession } from '../src/userspace/routerboot.ts';
import { qemuOf } from '../src/boards/board.ts';

/**
 * The router's boot the way `xip boot` and `xip measure` run it (bootBuilt,
 * the QEMU runner, the router profile's boot session) against a fake QEMU:
 * a Node script named qemu-system-mipsel on PATH that prints a router's
 * console, serves the status and power-off CGIs on the port its hostfwd
 * argument names, and exits 0 once powered off over HTTP. The real router
 * boots in test/integration-router.test.ts.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-router-session-'));
const bin = join(tmp, 'bin');
const savedPath = process.env.PATH;
// The fake QEMU must run itself, not under the firmware-hiding wrapper.
delete process.env[HIDE_FIRMWARE_ENV];
const ctx = makeContext({ config: 'lwrt_qemu_malta_defconfig', buildDir: join(tmp, 'build') });
/** What the fake QEMU served, in order ("GET /cgi-bin/status"), and its arguments. */
const served = join(tmp, 'served');
const argsFile = join(tmp, 'args');
const TOKEN = '0123456789abcdef01234567';

before(() => {
  mkdirSync(bin, { recursive: true });
  mkdirSync(dirname(ctx.imagePath), { recursive: true });
  writeFileSync(ctx.imagePath, Buffer.alloc(4096));
  // The admin token of an initramfs router build (routerAdminToken).
  mkdirSync(userspacePaths(ctx).dir, { recursive: true });
  writeFileSync(join(userspacePaths(ctx).dir, ADMIN_TOKEN_FILE), `${TOKEN}\n`);
  process.env.PATH = `${bin}:${savedPath}`;
});
after(() => {
  process.env.PATH = savedPath;
  rmSync(tmp, { recursive: true, force: true });
});

const STATUS_PAGE = `<table>
<tr><th>kernel</th><td id="kernel-release">6.12.57-xip</td></tr>
<tr><th>machine</th><td id="machine">mips</td></tr>
<tr><th>uptime</th><td id="uptime">3.21 s</td></tr>
<tr><th>MemTotal</th><td id="mem-total">13020 kB</td></tr>
<tr><th>MemFree</th><td id="mem-free">9000 kB</td></tr>
<tr><th>MemAvailable</th><td id="mem-available">8500 kB</td></tr>
</table>
<pre id="addresses">2: eth0: &lt;BROADCAST,UP&gt; mtu 1500
    inet 10.0.2.15/24 scope global eth0</pre>
<pre id="routes">10.0.2.0/24 dev eth0 scope link  src 10.0.2.15</pre>`;

/** Install the fake QEMU; `ready: false` makes a guest that never gets to LWRT-READY. */
function fakeQemu(o: { ready: boolean }): void {
  rmSync(served, { force: true });
  const script = `#!/usr/bin/env node
const fs = require('node:fs');
const http = require('node:http');
const args = process.argv.slice(2);
fs.writeFileSync(${JSON.stringify(argsFile)}, args.join('\\n'));
const say = (l) => process.stdout.write(l + '\\n');
say('Linux version 6.12.57-xip (fake) #1');
say('Memory: 13020K/16384K available (1745K kernel code, 496K rwdata, 148K rodata, 158K init, 172K bss, 3364K reserved, 0K cma-reserved)');
say('Freeing unused kernel image (initmem) memory: 188K');
if (!${o.ready}) process.exit(0);
const port = Number(/hostfwd=tcp:127\\.0\\.0\\.1:(\\d+)-192\\.168\\.1\\.1:80/.exec(args.join(' '))[1]);
http.createServer((req, res) => {
  fs.appendFileSync(${JSON.stringify(served)}, req.method + ' ' + req.url + '\\n');
  if (req.method === 'GET' && req.url === '/cgi-bin/status') return res.end(${JSON.stringify(STATUS_PAGE)});
  if (req.method === 'POST' && req.url === ${JSON.stringify(`/cgi-bin/poweroff?token=${TOKEN}`)}) {
    return res.end('powering off\\n', () => {
      say('LWRT-POWEROFF: requested over HTTP');
      say('reboot: Power down');
      setTimeout(() => process.exit(0), 50);
    });
  }
  res.statusCode = 404;
  res.end();
}).listen(port, '127.0.0.1', () => say('LWRT-READY: eth0 up, httpd on :80'));
`;
  const path = join(bin, qemuOf(ctx.board).binary);
  writeFileSync(path, script);
  chmodSync(path, 0o755);
}

describe('router boot session through bootBuilt (fake QEMU)', () => {
  it("the profile's own session: a NIC on a loopback port, power-off over HTTP once ready, QEMU exits 0", async () => {
    assert.equal(ctx.userspace, 'router');
    fakeQemu({ ready: true });
    const r = await bootBuilt(ctx, { memMiB: 16, timeoutMs: 30_000 });
    assert.equal(r.ok, true, JSON.stringify(r.failure));
    assert.deepEqual(r.markersSeen, [...ROUTER_MARKERS]);
    assert.equal(r.exitCode, 0);
    assert.equal(readFileSync(served, 'utf8'), `POST /cgi-bin/poweroff?token=${TOKEN}\n`, 'no status page unless asked');
    const args = readFileSync(argsFile, 'utf8').split('\n');
    assert.equal(args[args.indexOf('-netdev') + 1], 'user,id=wan,restrict=on');
    assert.match(args[args.lastIndexOf('-netdev') + 1]!, /^user,id=lan,restrict=on,net=192\.168\.1\.0\/24,.*,hostfwd=tcp:127\.0\.0\.1:\d+-192\.168\.1\.1:80$/);
    assert.equal(args[args.indexOf('-device') + 1], 'pcnet,netdev=wan,addr=0x0b,romfile=');
    assert.equal(args[args.lastIndexOf('-device') + 1], 'pcnet,netdev=lan,addr=0x12,romfile=');
  });

  it('a session that checks the status page records it, and the power-off answer, by the time bootBuilt returns', async () => {
    fakeQemu({ ready: true });
    const session = await routerBootSession(ctx, { checkStatus: true });
    const r = await bootBuilt(ctx, { memMiB: 16, timeoutMs: 30_000, session });
    assert.equal(r.ok, true, JSON.stringify(r.failure));
    const rec = session.record;
    assert.equal(rec.error, undefined);
    assert.equal(rec.ready, true);
    assert.equal(rec.status?.status, 200);
    assert.equal(rec.poweroff?.status, 200);
    assert.equal(rec.poweroff?.body, 'powering off\n');
    assert.deepEqual(rec.page, {
      kernelRelease: '6.12.57-xip',
      kernelBuild: undefined,
      machine: 'mips',
      uptimeSeconds: 3.21,
      memTotalKiB: 13020,
      memFreeKiB: 9000,
      memAvailableKiB: 8500,
      addresses: '2: eth0: <BROADCAST,UP> mtu 1500\n    inet 10.0.2.15/24 scope global eth0',
      routes: '10.0.2.0/24 dev eth0 scope link  src 10.0.2.15',
    });
    assert.equal(readFileSync(served, 'utf8'), `GET /cgi-bin/status\nPOST /cgi-bin/poweroff?token=${TOKEN}\n`);
  });

  it('a guest that never gets ready: the boot fails on the missing marker, the session says why', async () => {
    fakeQemu({ ready: false });
    const session = await routerBootSession(ctx);
    const r = await bootBuilt(ctx, { memMiB: 16, timeoutMs: 30_000, session });
    assert.equal(r.ok, false);
    assert.equal(r.failure?.kind, 'missing-marker');
    assert.equal(session.record.ready, false);
    assert.equal(session.record.error, 'QEMU ended before LWRT-READY');
  });

  it("the router profile's boot expects its markers, and the session is routerBootSession's", async () => {
    const b = bootExpectation('router');
    assert.deepEqual(b.markers, ROUTER_MARKERS);
    const s = await b.bootSession!(ctx);
    try {
      assert.ok('record' in s, 'a router session');
      assert.ok(s.extraArgs.includes('-netdev'));
    } finally {
      await s.close();
    }
  });
});
