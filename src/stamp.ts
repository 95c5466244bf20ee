import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XipError } from './errors.ts';
import { writeFileAtomic } from './fsutil.ts';
import { debug, info, step as startStep, type Step } from './log.ts';

/**
 * Content-hash stamps. A stage records the hash of everything it read in a
 * stamp file once it has succeeded. It is skipped only when that hash still
 * matches AND every output it promised exists. The stamp is removed before
 * the stage starts, so a stage that was interrupted or failed never looks
 * done to a later run. Every stamp also holds the hash of the toolkit's own
 * code (toolkitHash): a stage lists only its other inputs.
 */

/**
 * How long after a file was last written its cached hash is still not
 * trusted. Timestamps are coarse (the kernel stamps writes with a clock that
 * ticks every few ms; FAT and some network filesystems keep 1-2 s), so a
 * file rewritten at the same size right after it was hashed can keep the
 * size and mtime of the hashed version: git's "racy clean" problem. An
 * entry is used only for a file whose mtime is older than the moment it was
 * hashed by more than this margin; any other file is read again.
 */
export const RACY_MARGIN_MS = 2000;

interface CacheEntry {
  /** size:mtimeMs:ctimeMs:ino when the file was hashed. */
  key: string;
  hash: string;
  /** Date.now() when the hashing started. */
  hashedAt: number;
}

function isEntry(e: unknown): e is CacheEntry {
  const x = e as Partial<CacheEntry> | null;
  return typeof x === 'object' && x !== null && typeof x.key === 'string' && typeof x.hash === 'string' && typeof x.hashedAt === 'number';
}

/**
 * Remembers file hashes by (size, mtime, ctime, inode) so that large inputs
 * (the kernel tarball, a user's kernel tree) are read once, not on every
 * run. The stamp is still a content hash: a changed file changes size, mtime
 * or ctime (ctime cannot be set back, unlike mtime: cp -p, touch -r, tar)
 * and is hashed again; and an entry is trusted only when the file had not
 * been written for RACY_MARGIN_MS before it was hashed (see there).
 */
export class HashCache {
  private entries = new Map<string, CacheEntry>();
  private dirty = false;
  /** Lookups answered from the cache, and files read (for tests and debugging). */
  readonly stats = { hits: 0, reads: 0 };

  constructor(private readonly path?: string) {
    if (path && existsSync(path)) {
      try {
        const data = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
        // Entries of an older format (no hashedAt) are dropped: they are only re-read.
        for (const [p, e] of Object.entries(data)) if (isEntry(e)) this.entries.set(p, e);
      } catch {
        /* a corrupt cache is only a slower run */
      }
    }
  }

  fileHash(path: string): string {
    const st = statSync(path);
    const key = `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
    const hit = this.entries.get(path);
    if (hit && hit.key === key && st.mtimeMs < hit.hashedAt - RACY_MARGIN_MS) {
      this.stats.hits++;
      return hit.hash;
    }
    // The time before reading: a write that lands during the read is after it.
    const hashedAt = Date.now();
    const hash = hashFileSync(path);
    this.stats.reads++;
    this.entries.set(path, { key, hash, hashedAt });
    this.dirty = true;
    return hash;
  }

  save(): void {
    if (!this.path || !this.dirty) return;
    writeFileAtomic(this.path, JSON.stringify(Object.fromEntries(this.entries)));
    this.dirty = false;
  }
}

function hashFileSync(path: string): string {
  const h = createHash('sha256');
  // Read in chunks: a kernel tarball does not need to sit in memory at once.
  for (const chunk of readFileChunks(path)) h.update(chunk);
  return h.digest('hex');
}

function* readFileChunks(path: string): Generator<Buffer> {
  const size = statSync(path).size;
  if (size <= 16 * 1024 * 1024) {
    yield readFileSync(path);
    return;
  }
  // Large file: sequential reads through a file descriptor.
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      yield buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** sha256 of a file, streamed (for callers that want to await). */
export function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export interface TreeOptions {
  /** Names (any depth) that are left out, e.g. '.git'. */
  exclude?: readonly string[];
}

/**
 * Collects the inputs of a stage into one hash. Every addition is labelled
 * so that moving a value from one input to another changes the hash.
 */
export class Hasher {
  private readonly h = createHash('sha256');
  private readonly parts: string[] = [];

  constructor(private readonly cache: HashCache = new HashCache()) {}

  value(label: string, v: string | number | boolean | null | undefined | readonly string[]): this {
    const text = Array.isArray(v) ? JSON.stringify(v) : String(v);
    this.add(`value ${label}`, text);
    return this;
  }

  /** A file's content. A missing file is an input too ("absent"). */
  file(label: string, path: string): this {
    const hash = existsSync(path) ? this.cache.fileHash(path) : 'absent';
    this.add(`file ${label}`, hash);
    return this;
  }

  /** Every file, symlink and directory under dir: names, modes and contents. */
  tree(label: string, dir: string, opts: TreeOptions = {}): this {
    this.add(`tree ${label}`, treeHash(dir, opts, this.cache));
    return this;
  }

  private add(label: string, text: string): void {
    const line = `${label}=${text}`;
    this.parts.push(line.length > 200 ? `${line.slice(0, 200)}...` : line);
    this.h.update(`${label.length}:${label}${text.length}:${text}\n`);
  }

  /** The labelled inputs, for a stamp file a person can read. */
  describe(): string[] {
    return [...this.parts];
  }

  digest(): string {
    return this.h.copy().digest('hex');
  }
}

/** Hash of a directory tree: relative paths, types, exec bits, contents. */
export function treeHash(dir: string, opts: TreeOptions = {}, cache: HashCache = new HashCache()): string {
  if (!existsSync(dir)) return 'absent';
  const exclude = new Set(opts.exclude ?? []);
  const h = createHash('sha256');
  const walk = (d: string) => {
    const names = readdirSync(d).sort();
    for (const name of names) {
      if (exclude.has(name)) continue;
      const p = join(d, name);
      const rel = relative(dir, p);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) h.update(`l ${rel} ${readlinkSync(p)}\n`);
      else if (st.isDirectory()) {
        h.update(`d ${rel}\n`);
        walk(p);
      } else if (st.isFile()) h.update(`f ${rel} ${st.mode & 0o111 ? 'x' : '-'} ${cache.fileHash(p)}\n`);
      else h.update(`o ${rel}\n`);
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** The checkout this code runs from (the folder holding src/ and package.json). */
const TOOLKIT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Hash of the toolkit itself: every file under src/ (names, exec bits,
 * contents) and package-lock.json (the versions of its dependencies). Every
 * stamp holds it, so a change to any module a stage runs, directly or
 * through an import (the ELF reader, fsutil, ...), runs the stage again;
 * no stage has to list the modules it depends on.
 */
export function computeToolkitHash(root: string): string {
  const h = createHash('sha256');
  h.update(`src ${treeHash(join(root, 'src'))}\n`);
  const lock = join(root, 'package-lock.json');
  h.update(`package-lock.json ${existsSync(lock) ? hashFileSync(lock) : 'absent'}\n`);
  return h.digest('hex');
}

const toolkitHashes = new Map<string, string>();

/** computeToolkitHash, once per process and root (the code running does not change under it). */
export function toolkitHash(root: string = TOOLKIT_ROOT): string {
  let h = toolkitHashes.get(root);
  if (h === undefined) {
    h = computeToolkitHash(root);
    toolkitHashes.set(root, h);
  }
  return h;
}

interface StampData {
  stage: string;
  hash: string;
  inputs: string[];
  outputs: string[];
  written: string;
}

export function readStamp(path: string): StampData | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as StampData;
  } catch {
    return undefined;
  }
}

/** Why a stage must run, or undefined when it is up to date. */
export function staleReason(stampPath: string, hash: string, outputs: readonly string[]): string | undefined {
  const s = readStamp(stampPath);
  if (!s) return 'no stamp';
  if (s.hash !== hash) return 'inputs changed';
  const missing = outputs.find((o) => !existsSync(o));
  if (missing) return `output missing: ${missing}`;
  return undefined;
}

export function clearStamp(stampPath: string): void {
  rmSync(stampPath, { force: true });
}

export function writeStamp(stampPath: string, stage: string, hasher: Hasher, outputs: readonly string[]): void {
  const data: StampData = {
    stage,
    hash: hasher.digest(),
    inputs: hasher.describe(),
    outputs: [...outputs],
    written: new Date().toISOString(),
  };
  writeFileAtomic(stampPath, `${JSON.stringify(data, null, 2)}\n`);
}

export interface StageSpec {
  /** Shown in progress lines, e.g. "kernel stock-clang". */
  name: string;
  stampPath: string;
  /**
   * Fills the hasher with every input of the stage but the toolkit's own
   * code: runStage adds the toolkit hash to every stamp.
   */
  inputs: (h: Hasher) => void;
  /** Files the stage promises to leave behind. */
  outputs: readonly string[];
  /** Does the work. May return a one-line summary. */
  run: (step: Step) => Promise<string | void>;
  /** Run even when up to date. */
  force?: boolean;
  cache?: HashCache;
  /** The toolkit hash to record (default toolkitHash(): this checkout's src/ and lock file). */
  toolkit?: string;
}

export type StageOutcome = 'skipped' | 'built';

/** Run a stage unless its stamp says it is up to date. */
export async function runStage(spec: StageSpec): Promise<StageOutcome> {
  const hasher = new Hasher(spec.cache);
  hasher.value('toolkit', spec.toolkit ?? toolkitHash());
  spec.inputs(hasher);
  const reason = spec.force ? 'forced' : staleReason(spec.stampPath, hasher.digest(), spec.outputs);
  if (reason === undefined) {
    info(`[${spec.name}] up to date`);
    return 'skipped';
  }
  const s = startStep(spec.name);
  debug(`${spec.name}: ${reason}`);
  clearStamp(spec.stampPath);
  let summary: string | void;
  try {
    summary = await spec.run(s);
  } catch (err) {
    s.fail();
    throw err;
  }
  const missing = spec.outputs.filter((o) => !existsSync(o));
  if (missing.length > 0) {
    s.fail();
    throw new XipError(`${spec.name}: finished but did not produce ${missing.join(', ')}`);
  }
  // The stamp records the inputs as they were when the stage started: an
  // input edited while the stage ran makes the next run build again.
  writeStamp(spec.stampPath, spec.name, hasher, spec.outputs);
  spec.cache?.save();
  s.done(summary ?? undefined);
  return 'built';
}
