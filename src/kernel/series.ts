import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { badInput } from '../errors.ts';

/** The identity kernel/patches/ is committed with: replaced by the sender's own. */
export const SERIES_IDENTITY = 'mips-xip-kernel developers <dev@mips-xip-kernel.invalid>';

/** `Name <user@host>`, as git and the kernel's SubmittingPatches want it. */
const IDENTITY = /^[^<>\n@]+ <[^<>\s@]+@[^<>\s@]+>$/;

/**
 * One patch of the series with the sender's identity: the From: header and
 * our Signed-off-by: trailer are replaced; everything else (other trailers,
 * the diff) is left byte for byte.
 */
export function withIdentity(text: string, from: string): string {
  const [head, ...rest] = text.split('\n---\n');
  if (head === undefined) return text;
  const ourName = SERIES_IDENTITY.replace(/ <.*$/, '');
  const name = from.replace(/ <.*$/, '');
  const mail = head
    .split('\n')
    .map((l) => {
      if (l.startsWith('From: ')) return `From: ${from}`;
      if (l === `Signed-off-by: ${SERIES_IDENTITY}`) return `Signed-off-by: ${from}`;
      // The cover letter's shortlog: "mips-xip-kernel developers (12):".
      const m = /^(.*) \((\d+)\):$/.exec(l);
      return m && m[1] === ourName ? `${name} (${m[2]}):` : l;
    })
    .join('\n');
  return [mail, ...rest].join('\n---\n');
}

/**
 * Write kernel/patches/*.patch (cover letter included) to outDir with the
 * given identity. The directory appears whole or not at all: it is written
 * beside, then renamed over the old one.
 */
export function exportSeries(patchDir: string, outDir: string, from: string): string[] {
  if (!IDENTITY.test(from)) throw badInput(`--from '${from}' is not 'Full Name <user@example.org>': give the identity the patches are sent with`);
  const names = existsSync(patchDir) ? readdirSync(patchDir).filter((n) => /^\d{4}-.*\.patch$/.test(n)).sort() : [];
  if (names.length === 0) throw badInput(`${patchDir}: no NNNN-*.patch files: run this from a checkout of mips-xip-kernel`);
  // Only a directory this command wrote may be replaced: never wipe a user's directory.
  if (existsSync(outDir)) {
    const other = readdirSync(outDir).filter((n) => !/^\d{4}-.*\.patch$/.test(n));
    if (other.length > 0) throw badInput(`--out ${outDir} holds other files (${other.slice(0, 3).join(', ')}): give a new directory or one holding only a previous series`);
  }
  mkdirSync(dirname(outDir), { recursive: true });
  const tmp = `${outDir}.tmp-${process.pid}`;
  const old = `${outDir}.old-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    for (const n of names) writeFileSync(join(tmp, n), withIdentity(readFileSync(join(patchDir, n), 'utf8'), from));
    // The old series stays until the new one is in place.
    if (existsSync(outDir)) renameSync(outDir, old);
    renameSync(tmp, outDir);
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return names.map((n) => join(outDir, n));
}
