import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { main } from '../src/cli.ts';
import { REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import {
  applySteps,
  crc32,
  emptyPartition,
  encodeSlot,
  formatPayload,
  mergeSettings,
  parseAssignments,
  parsePayload,
  planWrite,
  readSettings,
  readSlot,
  seqNewer,
  SETTINGS_MAGIC,
  validateKey,
  validateValue,
  writeSettings,
  type Settings,
} from '../src/settings/format.ts';

const ES = 0x10000;
const tmp = mkdtempSync(join(tmpdir(), 'settings-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const isBadInput = (re: RegExp) => (e: unknown) => e instanceof XipError && e.exitCode === 2 && re.test(e.message) && !e.message.includes('\n');

/** A partition with `settings` written `times` times, starting fresh. */
function written(times: number, settings: Settings = { a: '1' }): Uint8Array {
  let p = emptyPartition(2 * ES);
  for (let i = 0; i < times; i++) p = writeSettings(p, ES, settings);
  return p;
}

/** A slot image with a chosen header over `payload` (crc computed unless given). */
function rawSlot(seq: number, payload: string, opts: { len?: number; crc?: number; magic?: string } = {}): Uint8Array {
  const body = Buffer.from(payload, 'latin1');
  const s = new Uint8Array(ES).fill(0xff);
  s.set(Buffer.from(opts.magic ?? SETTINGS_MAGIC, 'latin1'), 0);
  const v = new DataView(s.buffer);
  v.setUint32(4, seq >>> 0, true);
  v.setUint32(8, opts.len ?? body.length, true);
  v.setUint32(12, opts.crc ?? crc32(body), true);
  s.set(body, 16);
  return s;
}

function withSlots(a: Uint8Array | undefined, b: Uint8Array | undefined): Uint8Array {
  const p = emptyPartition(2 * ES);
  if (a) p.set(a, 0);
  if (b) p.set(b, ES);
  return p;
}

describe('XSET format', () => {
  it('crc32 is zlib\'s', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
    assert.equal(crc32(Buffer.from('hostname=lwrt\nlan_ip=192.168.1.1\nwifi_ssid=lwrt net\n')), 0x73d22414);
  });

  it('payload: sorted key=value lines in byte order, and back', () => {
    const s = { zeta: 'z', a_b: 'x=y', a: '', a9: 'with space', constructor: 'c' };
    const text = formatPayload(s);
    assert.equal(text, 'a=\na9=with space\na_b=x=y\nconstructor=c\nzeta=z\n');
    assert.deepEqual(parsePayload(text), s);
    assert.equal(formatPayload({}), '');
    assert.deepEqual(parsePayload(''), {});
    assert.throws(() => parsePayload('b=1\na=2\n'), isBadInput(/bad line 2: key 'a' after 'b' \(not sorted\)/));
    assert.throws(() => parsePayload('a=1\na=2\n'), isBadInput(/bad line 2: key 'a' twice/));
    assert.throws(() => parsePayload('a=1'), isBadInput(/bad line 1: no newline/));
    assert.throws(() => parsePayload('a=1\nnoequals\n'), isBadInput(/bad line 2: no =/));
  });

  it('round trips: fresh, then slot 0, 1, 0, ... with seq 1, 2, 3; the input is never changed', () => {
    const fresh = emptyPartition(2 * ES);
    assert.deepEqual(readSettings(fresh, ES), { settings: {}, seq: 0, slots: [{ valid: false, reason: 'erased' }, { valid: false, reason: 'erased' }] });
    let p = fresh;
    const sets: Settings[] = [{ hostname: 'lwrt' }, { hostname: 'lwrt', lan_ip: '10.0.0.1' }, {}, { x: 'y'.repeat(255) }];
    sets.forEach((s, i) => {
      const before = new Uint8Array(p);
      const next = writeSettings(p, ES, s);
      assert.deepEqual(p, before, 'writeSettings must not change its input');
      const r = readSettings(next, ES);
      assert.deepEqual(r.settings, s);
      assert.equal(r.seq, i + 1);
      assert.equal(r.slot, i % 2);
      // The other slot keeps the previous set.
      const other = r.slots[(i + 1) % 2]!;
      if (i === 0) assert.deepEqual(other, { valid: false, reason: 'erased' });
      else assert.deepEqual(other.valid && other.settings, sets[i - 1]);
      p = next;
    });
    // Bytes beyond the two slots are never touched.
    const big = emptyPartition(4 * ES);
    big.fill(0x5a, 2 * ES);
    const w = writeSettings(big, ES, { a: '1' });
    assert.deepEqual(w.subarray(2 * ES), big.subarray(2 * ES));
    assert.deepEqual(readSettings(w, ES).settings, { a: '1' });
  });

  it('a slot is the header, the payload and 0xff; the write steps are invalidate, erase, payload, header, magic', () => {
    const plan = planWrite(written(1), ES, { b: '2' });
    assert.deepEqual(
      plan.steps.map((s) => (s.kind === 'erase' ? `erase ${s.offset}+${s.length}` : `${s.what} ${s.offset}+${s.bytes.length}`)),
      // Two words at least per program (QEMU 9+ loses a one-word buffer write): the 4-byte payload goes with 4 bytes of 0xff.
      [`invalidate ${ES}+8`, `erase ${ES}+${ES}`, `payload ${ES + 16}+8`, `header ${ES + 8}+8`, `magic ${ES}+8`],
    );
    assert.equal(plan.seq, 2);
    assert.equal(plan.slot, 1);
    // An empty set has no payload step.
    assert.deepEqual(planWrite(written(1), ES, {}).steps.map((s) => (s.kind === 'erase' ? 'erase' : s.what)), ['invalidate', 'erase', 'header', 'magic']);
    const slot = encodeSlot(ES, 3, { k: 'v' });
    assert.deepEqual([...slot.subarray(0, 20)], [0x58, 0x53, 0x54, 0x31, 3, 0, 0, 0, 4, 0, 0, 0, ...[0, 1, 2, 3].map((i) => (crc32(Buffer.from('k=v\n')) >>> (8 * i)) & 0xff), 0x6b, 0x3d, 0x76, 0x0a]);
    assert.ok(slot.subarray(20).every((b) => b === 0xff));
  });

  it('the example slot of docs/settings.md is what the encoder writes', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'settings.md'), 'utf8');
    const m = /<!-- xset-example: eraseSize (0x[0-9a-f]+), seq (\d+), (\{.*\}) -->\n```\n([\s\S]*?)```/.exec(doc);
    assert.ok(m, 'docs/settings.md has the xset-example block');
    const bytes: number[] = [];
    for (const line of m[4]!.split('\n').filter(Boolean)) {
      const row = /^([0-9a-f]{4})  ((?:[0-9a-f]{2} )*[0-9a-f]{2})/.exec(line);
      assert.ok(row, line);
      assert.equal(parseInt(row[1]!, 16), bytes.length, `offset of ${line}`);
      bytes.push(...row[2]!.split(' ').map((h) => parseInt(h, 16)));
    }
    const es = parseInt(m[1]!, 16);
    const slot = encodeSlot(es, Number(m[2]), JSON.parse(m[3]!) as Settings);
    assert.deepEqual([...slot.subarray(0, bytes.length)], bytes);
    assert.ok(slot.subarray(bytes.length).every((b) => b === 0xff), 'the rest of the block is 0xff');
    assert.equal(bytes.length, 16 + new DataView(slot.buffer).getUint32(8, true));
  });

  it('seq: serial-number arithmetic, 0 is newer than 0xffffffff', () => {
    assert.equal(seqNewer(1, 0), true);
    assert.equal(seqNewer(0, 0xffffffff), true);
    assert.equal(seqNewer(0xffffffff, 0), false);
    assert.equal(seqNewer(5, 5), false);
    assert.equal(seqNewer(0x7fffffff, 0), true);
    assert.equal(seqNewer(0x80000000, 0), false);
    assert.equal(seqNewer(0, 0x80000000), false);

    // Slot 0 at 0xffffffff, slot 1 at 0: slot 1 is current.
    const p = withSlots(rawSlot(0xffffffff, 'a=old\n'), rawSlot(0, 'a=new\n'));
    const r = readSettings(p, ES);
    assert.equal(r.slot, 1);
    assert.equal(r.seq, 0);
    assert.deepEqual(r.settings, { a: 'new' });
    // Writing after 0xffffffff gives seq 0 in the other slot, and it is current.
    const w = writeSettings(withSlots(rawSlot(0xffffffff, 'a=old\n'), undefined), ES, { a: 'wrapped' });
    const rw = readSettings(w, ES);
    assert.deepEqual([rw.slot, rw.seq, rw.settings], [1, 0, { a: 'wrapped' }]);
    assert.deepEqual(readSettings(writeSettings(w, ES, { a: 'again' }), ES).seq, 1);
  });

  it('both slots valid: the newer seq wins, whichever slot holds it; a tie goes to slot 0', () => {
    const a = rawSlot(41, 'k=slot0\n');
    const b = rawSlot(42, 'k=slot1\n');
    assert.deepEqual(readSettings(withSlots(a, b), ES).settings, { k: 'slot1' });
    assert.deepEqual(readSettings(withSlots(rawSlot(43, 'k=slot0\n'), b), ES).settings, { k: 'slot0' });
    assert.equal(readSettings(withSlots(rawSlot(7, 'k=slot0\n'), rawSlot(7, 'k=slot1\n')), ES).slot, 0);
    assert.equal(readSettings(withSlots(undefined, b), ES).slot, 1);
    // The next write goes to the slot that is not current.
    assert.equal(planWrite(withSlots(a, b), ES, {}).slot, 0);
    assert.equal(planWrite(withSlots(rawSlot(43, ''), b), ES, {}).slot, 1);
  });

  it('rejects a slot with a bad crc, length, magic or payload, and names why', () => {
    const good = rawSlot(5, 'a=1\n');
    const flipped = new Uint8Array(good);
    flipped[16] = 'b'.charCodeAt(0);
    const cases: [Uint8Array, string][] = [
      [flipped, 'crc mismatch'],
      [rawSlot(5, 'a=1\n', { crc: 0x12345678 }), 'crc mismatch'],
      [rawSlot(5, 'a=1\n', { len: 9999 + ES }), `length ${9999 + ES} > ${ES - 16}`],
      [rawSlot(5, 'a=1\n', { magic: 'XST2' }), 'bad magic'],
      [rawSlot(5, 'a=1\n', { magic: '\xff\xff\xff\xff' }), 'no magic'],
      [rawSlot(5, 'a=1\nb=2\nB=3\n'), 'bad line 3'],
      [rawSlot(5, 'a=1\nb=\t\n'), 'bad line 2'],
      [rawSlot(5, `${'k'.repeat(33)}=1\n`), 'bad line 1'],
      [rawSlot(5, `a=${'v'.repeat(256)}\n`), 'bad line 1'],
      [rawSlot(5, 'a=\x80\n'), 'bad line 1'],
      [rawSlot(5, 'a=1\n\n'), 'bad line 2'],
      [new Uint8Array(ES).fill(0xff), 'erased'],
    ];
    for (const [slot, reason] of cases) {
      assert.deepEqual(readSlot(withSlots(slot, undefined), 0, ES), { valid: false, reason });
      // The other slot, if valid, is what counts.
      const r = readSettings(withSlots(slot, rawSlot(1, 'ok=yes\n')), ES);
      assert.deepEqual([r.slot, r.settings], [1, { ok: 'yes' }], reason);
    }
    assert.deepEqual(readSlot(withSlots(good, undefined), 0, ES), { valid: true, seq: 5, len: 4, settings: { a: '1' } });
    // A value with '=' and spaces is fine, and so is an empty payload.
    assert.deepEqual(readSlot(withSlots(rawSlot(1, 'a==b c\n'), undefined), 0, ES), { valid: true, seq: 1, len: 7, settings: { a: '=b c' } });
    assert.deepEqual(readSlot(withSlots(rawSlot(1, ''), undefined), 0, ES), { valid: true, seq: 1, len: 0, settings: {} });
  });

  it('refuses a partition that is not two or more whole erase blocks', () => {
    assert.throws(() => readSettings(emptyPartition(ES), ES), isBadInput(/65536 bytes is not two or more whole 65536-byte erase blocks/));
    assert.throws(() => readSettings(emptyPartition(2 * ES + 1), ES), isBadInput(/not two or more whole/));
    assert.throws(() => writeSettings(emptyPartition(ES), ES, {}), isBadInput(/not two or more whole/));
    assert.doesNotThrow(() => readSettings(emptyPartition(3 * ES), ES));
  });

  it('keys, values and assignments are checked, with one-line messages naming the rule', () => {
    assert.equal(validateKey('lan_ip'), undefined);
    assert.equal(validateKey('a'.repeat(32)), undefined);
    assert.match(validateKey('')!, /empty key/);
    assert.match(validateKey('Lan')!, /key 'Lan': a key is a lower-case letter, then up to 31 of a-z, 0-9 and _/);
    assert.match(validateKey('9a')!, /key '9a'/);
    assert.match(validateKey('_a')!, /key '_a'/);
    assert.match(validateKey('a-b')!, /key 'a-b'/);
    assert.match(validateKey('a'.repeat(33))!, /is 33 characters/);
    assert.equal(validateValue('k', ''), undefined);
    assert.equal(validateValue('k', ' ~'.repeat(100)), undefined);
    assert.match(validateValue('k', 'v'.repeat(256))!, /value of 'k' is 256 characters: a value is 0 to 255 printable ASCII/);
    assert.match(validateValue('k', 'a\nb')!, /value of 'k' has '\\x0a' at character 2/);
    assert.match(validateValue('k', 'é')!, /'\\xe9' at character 1/);

    assert.deepEqual(parseAssignments(['b=2', 'a=', 'c=x=y']), { b: '2', a: '', c: 'x=y' });
    assert.throws(() => parseAssignments(['novalue']), isBadInput(/'novalue': not KEY=VALUE; give key=value \(key= for an empty value; --unset KEY removes one\)/));
    assert.throws(() => parseAssignments(['Bad=1']), isBadInput(/'Bad=1': key 'Bad': a key is a lower-case letter/));
    assert.throws(() => parseAssignments(['=1']), isBadInput(/'=1': empty key/));
    assert.throws(() => parseAssignments(['a=\t']), isBadInput(/'a=\\x09': value of 'a' has '\\x09'/));
    assert.throws(() => parseAssignments(['a=1', 'a=2']), isBadInput(/'a' is given twice; give each key once/));
    assert.throws(() => formatPayload({ Bad: '1' }), isBadInput(/key 'Bad'/));
    assert.throws(() => writeSettings(written(0), ES, { a: '\n' }), isBadInput(/value of 'a'/));
  });

  it('merging: key= keeps the key, empty; --unset removes it; set and unset together is refused', () => {
    const old = { a: '1', b: '2', c: '3' };
    assert.deepEqual(mergeSettings(old, { b: '', d: '4' }, ['c', 'nosuch']), { a: '1', b: '', d: '4' });
    assert.deepEqual(old, { a: '1', b: '2', c: '3' });
    assert.deepEqual(mergeSettings(old, {}), old);
    assert.throws(() => mergeSettings(old, { a: 'x' }, ['a']), isBadInput(/'a' is both set and unset/));
    assert.throws(() => mergeSettings(old, {}, ['A']), isBadInput(/--unset: key 'A'/));
  });

  it('settings that do not fit in a slot are refused, nothing written', () => {
    const many: Settings = {};
    for (let i = 0; i < 300; i++) many[`k${i}`] = 'v'.repeat(250);
    assert.throws(() => writeSettings(written(1), ES, many), isBadInput(/the payload is \d+ bytes, a slot holds at most 65520/));
    // Exactly full fits.
    const small = 0x100;
    const full = { a: 'v'.repeat(small - 16 - 3) };
    assert.deepEqual(readSettings(writeSettings(emptyPartition(2 * small), small, full), small).settings, full);
    assert.throws(() => writeSettings(emptyPartition(2 * small), small, { a: 'v'.repeat(small - 16 - 2) }), isBadInput(/a slot holds at most 240/));
  });
});

/**
 * Every state a write can be cut in, from the partition before and after
 * it (writeSettings), in the documented order: the target block erased
 * (and torn erases on the way there), the payload word by word, the header
 * words (seq, len, crc), the magic last; and each word half-programmed
 * (programming only turns bits from 1 to 0, so a half-programmed byte is
 * its final value with some bits still 1).
 */
function tornStates(before: Uint8Array, afterWrite: Uint8Array): { what: string; p: Uint8Array }[] {
  const slot = readSettings(afterWrite, ES).slot!;
  const base = slot * ES;
  const len = new DataView(afterWrite.buffer, afterWrite.byteOffset).getUint32(base + 8, true);
  const out: { what: string; p: Uint8Array }[] = [{ what: 'nothing done', p: before }];
  // A torn erase: parts of the block at 0xff, the rest as before (one
  // that leaves the magic, len, crc and payload and raises only seq bits is
  // the caveat of docs/settings.md, tested on its own below).
  for (const [from, to] of [[0, 1], [0, 4], [0, 16], [0, 20], [12, 16], [16, 17], [16, ES], [0, ES / 2], [ES / 2, ES]] as const) {
    const p = new Uint8Array(before);
    p.fill(0xff, base + from!, base + to!);
    out.push({ what: `erase torn: ${from}..${to} erased`, p });
  }
  let cur = new Uint8Array(before);
  cur.fill(0xff, base, base + ES);
  out.push({ what: 'erased', p: cur });
  // Program units in order: payload words, then header words at 4, 8, 12, then the magic at 0.
  const words: { what: string; off: number; n: number }[] = [];
  for (let o = 0; o < len; o += 4) words.push({ what: `payload word ${o / 4}`, off: base + 16 + o, n: Math.min(4, len - o) });
  for (const o of [4, 8, 12]) words.push({ what: `header word ${o / 4}`, off: base + o, n: 4 });
  words.push({ what: 'magic', off: base, n: 4 });
  for (const w of words) {
    for (const mask of [0x01, 0x80, 0x0f, 0xf0, 0x55, 0xaa, 0xfe, 0x7f]) {
      for (let b = 0; b < w.n; b++) {
        // A mask of bits the byte ends with at 1 anyway is no half state.
        if ((afterWrite[w.off + b]! | mask) === afterWrite[w.off + b]) continue;
        const p = new Uint8Array(cur);
        // Bytes before b of the word done, byte b half done, the rest still erased.
        for (let i = 0; i < b; i++) p[w.off + i] = afterWrite[w.off + i]!;
        p[w.off + b] = afterWrite[w.off + b]! | mask;
        out.push({ what: `${w.what} byte ${b} half-programmed (${mask.toString(16)})`, p });
      }
    }
    cur = new Uint8Array(cur);
    cur.set(afterWrite.subarray(w.off, w.off + w.n), w.off);
    out.push({ what: `${w.what} programmed`, p: cur });
  }
  assert.deepEqual(cur, afterWrite, 'the steps rebuild the partition writeSettings made');
  return out;
}

describe('a write cut at any moment', () => {
  const cases: [string, Uint8Array, Settings][] = [
    ['the first write of a fresh device', emptyPartition(2 * ES), { hostname: 'lwrt', lan_ip: '192.168.1.1' }],
    ['a second write (slot 1)', written(1, { hostname: 'lwrt' }), { hostname: 'router', wifi: 'on', x: 'abc' }],
    ['a third write (slot 0 again, over an older valid slot)', written(2, { hostname: 'lwrt', z: 'zzzzzzz' }), { hostname: 'lwrt' }],
    ['a write of no settings', written(3, { a: '1' }), {}],
    ['a write after seq 0xffffffff', withSlots(rawSlot(0xfffffffe, 'a=old\n'), rawSlot(0xffffffff, 'a=current\n')), { a: 'next' }],
    ['a write over a corrupt slot', withSlots(rawSlot(9, 'a=current\n'), rawSlot(12, 'a=corrupt\n', { crc: 1 })), { a: 'next', b: 'x'.repeat(255) }],
  ];
  for (const [what, before, next] of cases) {
    it(`${what}: reads back exactly the old or the new settings, the new only once the magic is in`, () => {
      const old = readSettings(before, ES);
      const afterWrite = writeSettings(before, ES, next);
      const done = readSettings(afterWrite, ES);
      assert.deepEqual(done.settings, next);
      assert.equal(done.seq, (old.seq + 1) >>> 0);
      const states = tornStates(before, afterWrite);
      assert.ok(states.length > 100, `${states.length} states`);
      for (const { what: at, p } of states) {
        const r = readSettings(p, ES);
        const complete = p === states.at(-1)!.p;
        if (complete) assert.deepEqual([r.settings, r.seq], [next, done.seq], at);
        else assert.deepEqual([r.settings, r.seq, r.slot], [old.settings, old.seq, old.slot], at);
      }
    });
  }
});

describe('a torn erase of the slot before the current one', () => {
  it('cannot bring it back: its magic is programmed to 0 before the erase (docs/settings.md, step 2)', () => {
    // Slot 0 (seq 4, stale) is being erased for the write after slot 1 (seq 5).
    const p = withSlots(rawSlot(4, 'a=stale\n'), rawSlot(5, 'a=current\n'));
    const plan = planWrite(p, ES, {});
    assert.equal(plan.slot, 0);
    assert.deepEqual(plan.steps.slice(0, 2).map((s) => s.kind), ['program', 'erase'], 'the magic is cleared before the erase');
    const cleared = applySteps(p, plan.steps.slice(0, 1));
    assert.deepEqual([...cleared.subarray(0, 4)], [0, 0, 0, 0]);
    // An erase torn after it raised only bits of the seq word (4 -> 6): without step 2 slot 0 would be current again.
    const torn = new Uint8Array(cleared);
    torn[4] = 0x06;
    assert.deepEqual(readSettings(torn, ES).settings, { a: 'current' });
    const without = new Uint8Array(p);
    without[4] = 0x06;
    assert.deepEqual(readSettings(without, ES).settings, { a: 'stale' }, 'the hazard the step removes');
    // Torn with any of the magic's bits raised, short of all of XST1's: still the current settings.
    for (const b of [0x58, 0xff, 0x50]) {
      const q = new Uint8Array(torn);
      q[0] = b;
      assert.deepEqual(readSettings(q, ES).settings, { a: 'current' }, `magic byte 0 = ${b}`);
    }
  });
});

/**
 * Run xip in this process (the real command handler) with what it writes to
 * stdout and stderr captured. xip writes strings; the test runner's own
 * messages (binary, on this process's stdout) go through as they are.
 */
async function xip(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = process.stdout.write;
  const e = process.stderr.write;
  let out = '';
  let err = '';
  const grab = (stream: NodeJS.WriteStream, orig: typeof process.stdout.write, add: (s: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (orig as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      add(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = grab(process.stdout, o, (s) => (out += s));
  process.stderr.write = grab(process.stderr, e, (s) => (err += s));
  try {
    const code = await main(['--board', 'malta', ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('xip settings (malta: settings at 0x3e0000, 0x20000 bytes)', () => {
  const FLASH = 0x400000;
  const PART = 0x3e0000;
  const fresh = (name: string): string => {
    const f = join(tmp, name);
    const img = Buffer.alloc(FLASH, 0xff);
    img.fill(0x11, 0, 0x1000); // something outside the partition that must stay
    writeFileSync(f, img);
    return f;
  };
  const partOf = (f: string) => new Uint8Array(readFileSync(f)).subarray(PART, PART + 0x20000);

  it('get on a fresh image: no settings; set, get, get KEY, --json', async () => {
    const img = fresh('a.bin');
    assert.deepEqual(await xip('settings', 'get', img), { code: 0, out: '', err: '' });

    let r = await xip('settings', 'set', img, 'lan_ip=192.168.1.1', 'hostname=lwrt', 'note=');
    assert.deepEqual(r, { code: 0, out: 'settings: seq 1 in slot 0 (3 keys)\n', err: '' });
    const bytes = readFileSync(img);
    assert.equal(bytes.length, FLASH);
    assert.ok(bytes.subarray(0, 0x1000).every((b) => b === 0x11) && bytes.subarray(0x1000, PART).every((b) => b === 0xff), 'nothing outside the partition changes');
    assert.deepEqual(partOf(img), writeSettings(emptyPartition(0x20000), ES, { lan_ip: '192.168.1.1', hostname: 'lwrt', note: '' }));
    assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('.tmp')), [], 'no temporary file left');

    assert.deepEqual(await xip('settings', 'get', img), { code: 0, out: 'hostname=lwrt\nlan_ip=192.168.1.1\nnote=\n', err: '' });
    assert.deepEqual(await xip('settings', 'get', img, 'hostname'), { code: 0, out: 'lwrt\n', err: '' });
    assert.deepEqual(await xip('settings', 'get', img, 'note'), { code: 0, out: '\n', err: '' });
    r = await xip('settings', 'get', img, 'nosuch');
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /^xip settings: 'nosuch' is not set \(seq 1 in slot 0\)\n$/);

    r = await xip('settings', 'set', img, 'hostname=router', '--unset', 'note', '--unset', 'nosuch');
    assert.deepEqual(r, { code: 0, out: 'settings: seq 2 in slot 1 (2 keys)\n', err: '' });
    r = await xip('settings', 'get', img, '--json');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.out), {
      seq: 2,
      slot: 1,
      settings: { hostname: 'router', lan_ip: '192.168.1.1' },
      slots: [
        { valid: true, seq: 1, len: 39, settings: { hostname: 'lwrt', lan_ip: '192.168.1.1', note: '' } },
        { valid: true, seq: 2, len: 35, settings: { hostname: 'router', lan_ip: '192.168.1.1' } },
      ],
    });
    r = await xip('settings', 'get', fresh('b.bin'), '--json');
    assert.deepEqual(JSON.parse(r.out), { seq: 0, slot: null, settings: {}, slots: [{ valid: false, reason: 'erased' }, { valid: false, reason: 'erased' }] });
  });

  it('bad input: exit 2, one line, the image unchanged', async () => {
    const img = fresh('c.bin');
    await xip('settings', 'set', img, 'a=1');
    const before = readFileSync(img);
    const bad: [string[], RegExp][] = [
      [['settings', 'set', img, 'Bad=1'], /'Bad=1': key 'Bad': a key is a lower-case letter/],
      [['settings', 'set', img, 'novalue'], /'novalue': not KEY=VALUE/],
      [['settings', 'set', img, 'a=1', 'a=2'], /'a' is given twice/],
      [['settings', 'set', img, 'a=2', '--unset', 'a'], /'a' is both set and unset/],
      [['settings', 'set', img, `v=${'x'.repeat(256)}`], /value of 'v' is 256 characters/],
      [['settings', 'set', img], /nothing to do/],
      [['settings', 'get', img, 'a', 'b'], /one KEY at most/],
      [['settings', 'get', img, 'Bad'], /key 'Bad'/],
      [['settings', 'get', img, '--unset', 'a'], /--unset is for xip settings set/],
      [['settings', 'set', img, 'a=1', '--json'], /--json is for xip settings get/],
      [['settings', 'get', join(tmp, 'missing.bin')], /missing\.bin: no such flash image file; make one with xip image/],
      [['--loader', 'uboot', 'settings', 'get', img], /malta, loader uboot: the flash map has no settings partition; .*the shim map of malta has one/],
    ];
    for (const [args, re] of bad) {
      const r = await xip(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, re, args.join(' '));
      assert.equal(r.err.trimEnd().split('\n').length, 1, r.err);
    }
    const short = join(tmp, 'short.bin');
    writeFileSync(short, Buffer.alloc(1000, 0xff));
    const r = await xip('settings', 'get', short);
    assert.equal(r.code, 2);
    assert.match(r.err, /short\.bin: 1000 bytes, not a malta flash image \(4194304 bytes, 0x00400000\); make one with xip image/);
    assert.deepEqual(readFileSync(img), before);
    assert.equal((await xip('settings', 'frob', img)).code, 2);
  });

  it('reads what a torn write left: the old settings', async () => {
    const img = fresh('d.bin');
    await xip('settings', 'set', img, 'a=old');
    const flash = new Uint8Array(readFileSync(img));
    const part = flash.subarray(PART, PART + 0x20000);
    const plan = planWrite(part, ES, { a: 'new' });
    // Everything but the magic.
    flash.set(applySteps(part, plan.steps.slice(0, -1)), PART);
    writeFileSync(img, flash);
    const r = await xip('settings', 'get', img, '--json');
    const j = JSON.parse(r.out) as { seq: number; settings: Settings; slots: unknown[] };
    assert.deepEqual([j.seq, j.settings, j.slots[1]], [1, { a: 'old' }, { valid: false, reason: 'no magic' }]);
    // The next write goes to the same, unfinished slot again.
    assert.equal((await xip('settings', 'set', img, 'a=again')).out, 'settings: seq 2 in slot 1 (1 keys)\n');
  });
});
