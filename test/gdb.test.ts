import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { framePacket, GdbClient, parsePackets } from '../src/measure/gdb.ts';
import { failOnEscapes, isXip } from './fixtures/escapes.ts';

/**
 * The gdb client against a fake gdbstub (a net server on a unix socket in a
 * temporary directory). Whatever the stub sends, the client's requests
 * settle with an XipError: nothing is thrown from the socket's handlers,
 * where it would escape every caller's cleanup.
 */
const dir = mkdtempSync(join(tmpdir(), 'xip-gdb-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

interface FakeStub {
  path: string;
  server: Server;
  /** Every byte the client sent, as one string. */
  received: () => string;
  /** Resolves when the client's connection has ended. */
  clientGone: Promise<void>;
  /** End the connection from the stub's side. */
  hangUp: () => void;
}

/** A stub that answers every packet it gets with `answer(payload)` (raw bytes, sent as they are). */
async function fakeStub(answer: (payload: string) => string | undefined): Promise<FakeStub> {
  const path = join(dir, `gdb-${n++}.sock`);
  let received = '';
  let gone!: () => void;
  const clientGone = new Promise<void>((r) => (gone = r));
  const conns: Socket[] = [];
  const server = createServer((s: Socket) => {
    conns.push(s);
    s.setEncoding('latin1');
    let buf = '';
    s.on('data', (d: string) => {
      received += d;
      buf += d;
      for (;;) {
        const m = /\$([^#]*)#[0-9a-f]{2}/.exec(buf);
        if (!m) break;
        buf = buf.slice(m.index + m[0].length);
        const reply = answer(m[1]!);
        if (reply !== undefined && !s.destroyed) s.write(reply);
      }
    });
    s.on('close', () => gone());
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server, received: () => received, clientGone, hangUp: () => conns.forEach((c) => c.destroy()) };
}

failOnEscapes();

describe('gdb client against a fake gdbstub', () => {
  it('a well-behaved stub: requests get their replies, packets are acknowledged', async () => {
    const regs = `${'00000000'.repeat(37)}08b9dd9f`;
    const stub = await fakeStub((p) => `+${framePacket(p === '?' ? 'S05' : p === 'g' ? regs : p.startsWith('Z0') ? 'OK' : '')}`);
    const gdb = await GdbClient.connect({ path: stub.path }, 2000);
    try {
      assert.equal(await gdb.haltReason(), 'S05');
      await gdb.setBreakpoint(0x9fddb908);
      assert.equal(await gdb.readRegister(37, 'little'), 0x9fddb908);
    } finally {
      gdb.close();
      stub.server.close();
    }
    assert.match(stub.received(), /\+/, 'the client acknowledged the replies');
  });

  it("'$OK#00' (a wrong checksum) rejects the request with an XipError and closes the connection", async () => {
    const stub = await fakeStub(() => '+$OK#00');
    const gdb = await GdbClient.connect({ path: stub.path }, 2000);
    try {
      await assert.rejects(gdb.setBreakpoint(0x80000000), isXip(/gdbstub: packet with a bad checksum: received '\$OK#00', its checksum is 9a/));
      await stub.clientGone;
      // Later requests fail the same way, at once.
      await assert.rejects(gdb.haltReason(), isXip(/bad checksum/));
    } finally {
      gdb.close();
      stub.server.close();
    }
  });

  it('bytes that are not the remote protocol reject the request, showing what came', async () => {
    const stub = await fakeStub(() => 'HTTP/1.1 400 Bad Request\r\n\r\n');
    const gdb = await GdbClient.connect({ path: stub.path }, 2000);
    try {
      await assert.rejects(gdb.haltReason(), isXip(/not the gdb remote protocol: received 'HTTP\/1\.1 400 Bad Request\\x0d\\x0a/));
      await stub.clientGone;
    } finally {
      gdb.close();
      stub.server.close();
    }
  });

  it('garbage while no request waits fails the next request', async () => {
    const path = join(dir, `gdb-${n++}.sock`);
    const server = createServer((s) => {
      s.on('error', () => {});
      s.write(Buffer.from('\x00\xffgarbage', 'latin1'));
    });
    await new Promise<void>((r) => server.listen(path, r));
    const gdb = await GdbClient.connect({ path }, 2000);
    try {
      await new Promise((r) => setTimeout(r, 100));
      await assert.rejects(gdb.haltReason(), isXip(/not the gdb remote protocol: received '\\x00\\xffgarbage'/));
    } finally {
      gdb.close();
      server.close();
    }
  });

  it('no reply in time: the message says the time it waited, and the client is closed', async () => {
    const stub = await fakeStub(() => '+');
    const gdb = await GdbClient.connect({ path: stub.path }, 2000);
    try {
      await assert.rejects(gdb.request('?', 300), isXip(/gdbstub: no reply to '\?' within 300 ms/));
      await stub.clientGone;
      await assert.rejects(gdb.request('g'), isXip(/within 300 ms/));
    } finally {
      gdb.close();
      stub.server.close();
    }
  });

  it('nothing listening: connect gives up after its timeout and says where it tried', async () => {
    await assert.rejects(GdbClient.connect({ path: join(dir, 'nobody.sock') }, 200), isXip(/gdbstub: could not connect to QEMU at .*nobody\.sock within 200 ms: .*ENOENT/));
  });

  it('a stub that hangs up rejects the pending continue', async () => {
    const stub = await fakeStub(() => undefined);
    const gdb = await GdbClient.connect({ path: stub.path }, 2000);
    try {
      const cont = gdb.cont(0);
      await new Promise((r) => setTimeout(r, 50));
      stub.hangUp();
      await assert.rejects(cont, isXip(/gdbstub: QEMU closed the connection/));
    } finally {
      gdb.close();
      stub.server.close();
    }
  });
});

describe('gdb packet parser on garbage', () => {
  it('rejects anything but acks between packets, and a packet without its end past the limit', () => {
    assert.throws(() => parsePackets('+$OK#9aXYZ'), isXip(/not the gdb remote protocol: received 'XYZ'/));
    assert.throws(() => parsePackets(`$${'a'.repeat(1024 * 1024 + 1)}`), isXip(/packet of more than 1048576 bytes without its end/));
    assert.deepEqual(parsePackets('-+$OK#9A').packets, ['OK'], 'acks, NAKs and an upper-case checksum');
  });
});
