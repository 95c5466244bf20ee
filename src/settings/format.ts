import { badInput, shown } from '../errors.ts';

/**
 * The XSET settings store (docs/settings.md): key=value settings on a raw
 * NOR flash partition, in two slots of one erase block each, written so
 * that a power cut at any moment leaves the old settings or the new ones.
 * The target's xset tool (userspace/lwrt/tools/xset.c) reads and writes the
 * same bytes; this is the host's side, on a partition held in memory.
 *
 * A slot: 16-byte header, then the payload, the rest of the block 0xff.
 *   0..3   magic "XST1" (programmed last)
 *   4..7   seq, u32 little-endian
 *   8..11  len, u32 LE: payload bytes, at most eraseSize - 16
 *   12..15 crc32 of the payload (zlib's), u32 LE
 *   16..   `key=value\n` lines, sorted by key, each key once
 */
export const SETTINGS_MAGIC = 'XST1';
export const SLOT_HEADER_SIZE = 16;
/** The fewest bytes one program step writes (two 32-bit words). */
export const MIN_PROGRAM = 8;
export const KEY_MAX = 32;
export const VALUE_MAX = 255;

const KEY_RULE = 'a key is a lower-case letter, then up to 31 of a-z, 0-9 and _';
const VALUE_RULE = `a value is 0 to ${VALUE_MAX} printable ASCII characters (0x20..0x7e)`;
const KEY_RE = /^[a-z][a-z0-9_]*$/;
const MAGIC_BYTES = [...SETTINGS_MAGIC].map((c) => c.charCodeAt(0));

export type Settings = Record<string, string>;

/** One slot as read: valid (its seq, payload length and settings) or why not. */
export type SlotState = { valid: true; seq: number; len: number; settings: Settings } | { valid: false; reason: string };

export interface SettingsState {
  /** The current settings (empty when no slot is valid). */
  settings: Settings;
  /** Sequence number of the current slot; 0 when there is none. */
  seq: number;
  /** The current slot; undefined when neither is valid (a fresh device). */
  slot?: 0 | 1;
  slots: [SlotState, SlotState];
}

let crcTable: Uint32Array | undefined;

/** CRC-32 as zlib, Ethernet and PNG compute it (reflected 0xedb88320, init and final xor 0xffffffff). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Whether seq `a` is newer than `b` in serial-number arithmetic: (a - b) mod 2^32 in [1, 2^31). */
export function seqNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d >= 1 && d < 0x80000000;
}

/** What is wrong with `key` as a settings key, or undefined when nothing is. */
export function validateKey(key: string): string | undefined {
  if (key === '') return `empty key: ${KEY_RULE}`;
  if (key.length > KEY_MAX) return `key ${shown(key, 40)} is ${key.length} characters: ${KEY_RULE}`;
  if (!KEY_RE.test(key)) return `key ${shown(key, 40)}: ${KEY_RULE}`;
  return undefined;
}

/** What is wrong with `value` as the value of `key`, or undefined when nothing is. */
export function validateValue(key: string, value: string): string | undefined {
  if (value.length > VALUE_MAX) return `value of '${key}' is ${value.length} characters: ${VALUE_RULE}`;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return `value of '${key}' has ${shown(value[i]!)} at character ${i + 1}: ${VALUE_RULE}`;
  }
  return undefined;
}

/** Keys in byte order (what the payload and the target's xset sort by; never the locale's order). */
const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

type PayloadCheck = { ok: true; settings: Settings } | { ok: false; line: number; why: string };

/** Check payload text (one character per byte) line by line: `key=value\n`, keys valid, strictly ascending. */
function checkPayload(text: string): PayloadCheck {
  const settings: Settings = {};
  let prev: string | undefined;
  let line = 0;
  let at = 0;
  while (at < text.length) {
    line++;
    const nl = text.indexOf('\n', at);
    if (nl < 0) return { ok: false, line, why: 'no newline at its end' };
    const body = text.slice(at, nl);
    at = nl + 1;
    const eq = body.indexOf('=');
    if (eq < 0) return { ok: false, line, why: 'no =' };
    const key = body.slice(0, eq);
    const value = body.slice(eq + 1);
    const problem = validateKey(key) ?? validateValue(key, value);
    if (problem) return { ok: false, line, why: problem };
    if (prev !== undefined && byteOrder(prev, key) >= 0) return { ok: false, line, why: prev === key ? `key '${key}' twice` : `key '${key}' after '${prev}' (not sorted)` };
    prev = key;
    settings[key] = value;
  }
  return { ok: true, settings };
}

/** The settings of payload text; bad syntax is bad input naming the line. */
export function parsePayload(text: string): Settings {
  const r = checkPayload(text);
  if (!r.ok) throw badInput(`settings payload: bad line ${r.line}: ${r.why}; write it with xip settings set (or xset set on the target)`);
  return r.settings;
}

/** Check every key and value of `settings`; the first bad one is bad input. */
function checkSettings(settings: Settings): void {
  for (const [k, v] of Object.entries(settings)) {
    const problem = validateKey(k) ?? validateValue(k, v);
    if (problem) throw badInput(`settings: ${problem}`);
  }
}

/** The payload text of `settings`: `key=value\n` lines sorted by key (byte order), as xset writes them. */
export function formatPayload(settings: Settings): string {
  checkSettings(settings);
  return Object.keys(settings)
    .sort(byteOrder)
    .map((k) => `${k}=${settings[k]!}\n`)
    .join('');
}

function checkGeometry(size: number, eraseSize: number): void {
  if (!Number.isInteger(eraseSize) || eraseSize <= SLOT_HEADER_SIZE) {
    throw badInput(`settings partition: erase size ${eraseSize} is not a whole number of bytes above ${SLOT_HEADER_SIZE}; check the board's eraseSize`);
  }
  if (size < 2 * eraseSize || size % eraseSize !== 0) {
    throw badInput(`settings partition: ${size} bytes is not two or more whole ${eraseSize}-byte erase blocks; make the partition at least ${2 * eraseSize} bytes, a multiple of ${eraseSize}`);
  }
}

const u32le = (b: Uint8Array, off: number): number => (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;

function putU32le(b: Uint8Array, off: number, v: number): void {
  for (let i = 0; i < 4; i++) b[off + i] = (v >>> (8 * i)) & 0xff;
}

/** Slot `slotIndex` (0 or 1) of a settings partition: valid, or the reason it is not. */
export function readSlot(partition: Uint8Array, slotIndex: 0 | 1, eraseSize: number): SlotState {
  checkGeometry(partition.length, eraseSize);
  const slot = partition.subarray(slotIndex * eraseSize, (slotIndex + 1) * eraseSize);
  if (!MAGIC_BYTES.every((m, i) => slot[i] === m)) {
    if (slot.every((b) => b === 0xff)) return { valid: false, reason: 'erased' };
    // No magic yet but something programmed: a write that did not finish.
    if (slot.subarray(0, 4).every((b) => b === 0xff)) return { valid: false, reason: 'no magic' };
    return { valid: false, reason: 'bad magic' };
  }
  const seq = u32le(slot, 4);
  const len = u32le(slot, 8);
  const max = eraseSize - SLOT_HEADER_SIZE;
  if (len > max) return { valid: false, reason: `length ${len} > ${max}` };
  const payload = slot.subarray(SLOT_HEADER_SIZE, SLOT_HEADER_SIZE + len);
  if (crc32(payload) !== u32le(slot, 12)) return { valid: false, reason: 'crc mismatch' };
  const r = checkPayload(Buffer.from(payload).toString('latin1'));
  if (!r.ok) return { valid: false, reason: `bad line ${r.line}` };
  return { valid: true, seq, len, settings: r.settings };
}

/** The current settings of a partition: the valid slot with the newer seq (slot 0 on a tie), else none. */
export function readSettings(partition: Uint8Array, eraseSize: number): SettingsState {
  checkGeometry(partition.length, eraseSize);
  const slots: [SlotState, SlotState] = [readSlot(partition, 0, eraseSize), readSlot(partition, 1, eraseSize)];
  const [a, b] = slots;
  let cur: 0 | 1 | undefined = a.valid ? 0 : undefined;
  if (b.valid && (!a.valid || seqNewer(b.seq, a.seq))) cur = 1;
  if (cur === undefined) return { settings: {}, seq: 0, slots };
  const s = slots[cur] as Extract<SlotState, { valid: true }>;
  return { settings: { ...s.settings }, seq: s.seq, slot: cur, slots };
}

/** A whole slot (one erase block): header, payload of `settings`, 0xff after. */
export function encodeSlot(eraseSize: number, seq: number, settings: Settings): Uint8Array {
  const payload = Buffer.from(formatPayload(settings), 'latin1');
  const max = eraseSize - SLOT_HEADER_SIZE;
  if (payload.length > max) {
    throw badInput(`settings: the payload is ${payload.length} bytes, a slot holds at most ${max}; remove some settings or shorten values`);
  }
  const slot = new Uint8Array(eraseSize).fill(0xff);
  slot.set(MAGIC_BYTES, 0);
  putU32le(slot, 4, seq >>> 0);
  putU32le(slot, 8, payload.length);
  putU32le(slot, 12, crc32(payload));
  slot.set(payload, SLOT_HEADER_SIZE);
  return slot;
}

/** One step of a write, in partition offsets: an erase (to 0xff) or a program (bits only go from 1 to 0). */
export type WriteStep =
  | { kind: 'erase'; offset: number; length: number }
  | { kind: 'program'; what: 'invalidate' | 'payload' | 'header' | 'magic'; offset: number; bytes: Uint8Array };

export interface WritePlan {
  slot: 0 | 1;
  seq: number;
  /** Keys in the new settings. */
  keys: number;
  /** In order: program the slot's magic and seq to 0, erase the slot, program the payload, the header's len/crc, the magic and seq last. */
  steps: WriteStep[];
}

/** How `settings` are written to a partition: which slot, which seq, the steps in their order. */
export function planWrite(partition: Uint8Array, eraseSize: number, settings: Settings): WritePlan {
  const cur = readSettings(partition, eraseSize);
  const slot: 0 | 1 = cur.slot === 0 ? 1 : 0;
  const seq = (cur.seq + 1) >>> 0;
  const image = encodeSlot(eraseSize, seq, settings);
  const len = u32le(image, 8);
  const base = slot * eraseSize;
  // Every program is two 32-bit words or more: QEMU 9 and later lose a one-word buffer write (docs/settings.md).
  // Magic and seq go to 0 first: an erase torn half-way cannot leave the older slot it held looking valid.
  const steps: WriteStep[] = [
    { kind: 'program', what: 'invalidate', offset: base, bytes: new Uint8Array(MIN_PROGRAM) },
    { kind: 'erase', offset: base, length: eraseSize },
  ];
  // A short payload is padded with 0xff, which programs nothing on erased flash.
  if (len > 0) steps.push({ kind: 'program', what: 'payload', offset: base + SLOT_HEADER_SIZE, bytes: image.slice(SLOT_HEADER_SIZE, SLOT_HEADER_SIZE + Math.max(len, MIN_PROGRAM)) });
  steps.push({ kind: 'program', what: 'header', offset: base + 8, bytes: image.slice(8, SLOT_HEADER_SIZE) });
  steps.push({ kind: 'program', what: 'magic', offset: base, bytes: image.slice(0, 8) });
  return { slot, seq, keys: Object.keys(settings).length, steps };
}

/** Apply write steps to a copy of `partition`, as NOR flash does them. */
export function applySteps(partition: Uint8Array, steps: readonly WriteStep[]): Uint8Array {
  const out = new Uint8Array(partition);
  for (const s of steps) {
    if (s.kind === 'erase') out.fill(0xff, s.offset, s.offset + s.length);
    else for (let i = 0; i < s.bytes.length; i++) out[s.offset + i]! &= s.bytes[i]!;
  }
  return out;
}

/** The partition after writing `settings` (a new array; `partition` is left as it is). */
export function writeSettings(partition: Uint8Array, eraseSize: number, settings: Settings): Uint8Array {
  return applySteps(partition, planWrite(partition, eraseSize, settings).steps);
}

/** An erased partition of `size` bytes (all 0xff): a fresh device, no settings. */
export function emptyPartition(size: number): Uint8Array {
  return new Uint8Array(size).fill(0xff);
}

/** `key=value` arguments as settings, each checked; a bad one, or a key given twice, is bad input naming it. */
export function parseAssignments(args: readonly string[]): Settings {
  const out: Settings = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq < 0) throw badInput(`${shown(arg)}: not KEY=VALUE; give key=value (key= for an empty value; --unset KEY removes one)`);
    const key = arg.slice(0, eq);
    const value = arg.slice(eq + 1);
    const problem = validateKey(key) ?? validateValue(key, value);
    if (problem) throw badInput(`${shown(arg)}: ${problem}`);
    if (Object.hasOwn(out, key)) throw badInput(`'${key}' is given twice; give each key once`);
    out[key] = value;
  }
  return out;
}

/**
 * `old` with `assignments` applied (a key= assignment keeps the key with an
 * empty value) and the keys of `unset` removed (one that is not set is no
 * error). A key both assigned and unset is bad input.
 */
export function mergeSettings(old: Settings, assignments: Settings, unset: readonly string[] = []): Settings {
  const out: Settings = { ...old, ...assignments };
  for (const key of unset) {
    const problem = validateKey(key);
    if (problem) throw badInput(`--unset: ${problem}`);
    if (Object.hasOwn(assignments, key)) throw badInput(`'${key}' is both set and unset; give one of them`);
    delete out[key];
  }
  checkSettings(out);
  return out;
}
