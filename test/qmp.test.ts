import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseMessage, QmpClient } from '../src/qemu/qmp.ts';
import { failOnEscapes, isXip } from './fixtures/escapes.ts';

/**
 * The QMP client against a fake QMP server (a net server on a unix socket in
 * a temporary directory). Whatever the server sends, the client's commands
 * settle with an XipError: nothing is thrown from the socket's handlers,
 * where it would escape every caller's cleanup.
 */
const dir = mkdtempSync(join(tmpdir(), 'xip-qmp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}}, "capabilities": []}}\r\n';

interface FakeQmp {
  path: string;
  server: Server;
  /** Resolves when the client's connection has ended. */
  clientGone: Promise<void>;
}

/**
 * A server that sends `greeting` on connect and answers every command line
 * with `answer(command)` (raw text, sent as it is; undefined: no answer).
 */
async function fakeQmp(greeting: string, answer: (execute: string) => string | undefined): Promise<FakeQmp> {
  const path = join(dir, `qmp-${n++}.sock`);
  let gone!: () => void;
  const clientGone = new Promise<void>((r) => (gone = r));
  const server = createServer((s: Socket) => {
    s.setEncoding('utf8');
    s.on('error', () => {});
    s.on('close', () => gone());
    s.write(greeting);
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = (JSON.parse(buf.slice(0, nl)) as { execute: string }).execute;
        buf = buf.slice(nl + 1);
        const reply = answer(cmd);
        if (reply !== undefined && !s.destroyed) s.write(reply);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server, clientGone };
}

failOnEscapes();

describe('QMP client against a fake server', () => {
  it('a well-behaved server: greeting, capabilities, a command; events are not replies', async () => {
    const q = await fakeQmp(GREETING, (c) =>
      c === 'query-replay'
        ? '{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n{"return": {"mode": "record", "icount": 1234}}\r\n'
        : '{"return": {}}\r\n',
    );
    const c = await QmpClient.connect(q.path, 2000);
    try {
      assert.equal(await c.icount(), 1234);
    } finally {
      c.close();
      q.server.close();
    }
  });

  it('a greeting that is not JSON fails connect at once with an XipError showing it', async () => {
    const q = await fakeQmp('SSH-2.0-OpenSSH_9.2\r\n', () => undefined);
    const t0 = Date.now();
    try {
      await assert.rejects(QmpClient.connect(q.path, 5000), isXip(/QMP: not JSON: received 'SSH-2\.0-OpenSSH_9\.2'; is the socket QEMU's -qmp one\?/));
      assert.ok(Date.now() - t0 < 2000, 'not retried until the connect timeout');
      await q.clientGone;
    } finally {
      q.server.close();
    }
  });

  it('a reply that is not JSON rejects the command, and every later one, and closes the connection', async () => {
    const q = await fakeQmp(GREETING, (c) => (c === 'qmp_capabilities' ? '{"return": {}}\n' : '{"return": {"icount": 1\x00\n'));
    const c = await QmpClient.connect(q.path, 2000);
    try {
      await assert.rejects(c.icount(), isXip(/QMP: not JSON: received '\{"return": \{"icount": 1\\x00'/));
      await q.clientGone;
      assert.equal(c.isClosed, true);
      await assert.rejects(c.hmp('info registers'), isXip(/not JSON/));
    } finally {
      c.close();
      q.server.close();
    }
  });

  it('a reply and garbage in one read: the reply still answers its command, the garbage fails the next', async () => {
    const q = await fakeQmp(GREETING, (c) => (c === 'qmp_capabilities' ? '{"return": {}}\n' : '{"return": {"mode": "record", "icount": 5}}\nnot json\n'));
    const c = await QmpClient.connect(q.path, 2000);
    try {
      assert.equal(await c.icount(), 5);
      await q.clientGone;
      await assert.rejects(c.icount(), isXip(/QMP: not JSON: received 'not json'/));
    } finally {
      c.close();
      q.server.close();
    }
  });

  it('JSON that is not an object (null, a number, an array) is refused', async () => {
    for (const bad of ['null', '42', '[1,2]']) {
      const q = await fakeQmp(GREETING, (c) => (c === 'qmp_capabilities' ? '{"return": {}}\n' : `${bad}\n`));
      const c = await QmpClient.connect(q.path, 2000);
      try {
        await assert.rejects(c.icount(), isXip(new RegExp(`QMP: not a JSON object: received '${bad.replace(/[[\]]/g, '\\$&')}'`)));
      } finally {
        c.close();
        q.server.close();
      }
    }
  });

  it('no reply in time: the message says the time it used', async () => {
    const q = await fakeQmp(GREETING, (c) => (c === 'qmp_capabilities' ? '{"return": {}}\n' : undefined));
    const c = await QmpClient.connect(q.path, 300);
    try {
      await assert.rejects(c.icount(), isXip(/QMP: no reply to 'query-replay' within 300 ms/));
      assert.equal(c.isClosed, true, 'a late reply must not be taken for the next command');
    } finally {
      c.close();
      q.server.close();
    }
  });

  it('nothing listening: connect gives up after its timeout and says it', async () => {
    await assert.rejects(QmpClient.connect(join(dir, 'nobody.sock'), 200), isXip(/QMP: could not connect to QEMU at .*nobody\.sock within 200 ms: .*ENOENT/));
  });
});

describe('QMP message parser', () => {
  it('takes JSON objects and shows what it refuses', () => {
    assert.deepEqual(parseMessage('{"return": {}}'), { return: {} });
    assert.throws(() => parseMessage('\x1b[31mred'), isXip(/not JSON: received '\\x1b\[31mred'/));
    assert.throws(() => parseMessage('"a string"'), isXip(/not a JSON object/));
  });
});
