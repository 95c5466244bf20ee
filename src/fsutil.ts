import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { ZodType } from 'zod';
import { badInput } from './errors.ts';

/**
 * Write a file atomically: write to a temporary name in the same directory,
 * fsync, rename. A reader (or a later run) sees the old file or the new one,
 * never half of one.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', mode ?? 0o644);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Parse `text` (a JSON file's contents) with a zod schema; bad JSON or a
 * value that does not fit is bad input in one line naming `where`, the
 * first offending path and `fix`.
 */
export function parseJsonText<T>(schema: ZodType<T>, text: string, where: string, fix = 'fix the file'): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw badInput(`${where}: not valid JSON (${(err as Error).message.split('\n')[0]}); ${fix}`);
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw badInput(`${where}: ${i.path.join('.') || '(top)'}: ${i.message}; ${fix}`);
  }
  return r.data;
}
