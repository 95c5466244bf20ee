import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { BuildContext } from '../context.ts';
import { badInput, EXIT, XipError } from '../errors.ts';
import { parseJsonText, sha256, writeFileAtomic } from '../fsutil.ts';
import { textPages } from './flashroot.ts';

/**
 * An execution profile of the router's root, the AXFS idea on mainline
 * cramfs: which pages of which programs a workload really used. `xip
 * profile` records it on the all-compressed root (router-cramfs): after the
 * workload, the guest's `resident` tool (userspace/lwrt/tools/resident.c)
 * asks mincore() which pages of each program are in the page cache. cramfs
 * on MTD has no readahead, so those are exactly the pages that were read.
 * The 'router-profiled' root then stores for execution in place the
 * programs' code up to the last page the profile saw used, and compresses
 * the rest.
 *
 * Not exactly the used pages, as AXFS does: mainline cramfs maps in place
 * only the leading run of direct pages of a mapping (cramfs_physmem_mmap()
 * takes cramfs_get_block_range() from the mapping's first page and stops at
 * the first page that is not direct); any later page, direct or not, is
 * read into the page cache on a fault. An unused page between used ones
 * therefore stays in place too, or every used page after it would cost RAM.
 */

export const ProfileSchema = z.object({
  board: z.string(),
  /** What ran while it was recorded. */
  workload: z.string(),
  recorded: z.string(),
  /** Image path -> the file's sha256 when recorded and the pages that were read. */
  files: z.record(z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative(), pages: z.array(z.number().int().nonnegative()) })),
});
export type XipProfile = z.infer<typeof ProfileSchema>;

/** Where `xip profile` writes the profile of a board's router (per build directory: the busybox it describes is built there). */
export function profilePath(ctx: BuildContext): string {
  return join(ctx.buildDir, ctx.board.name, `lwrt-xip-profile-${ctx.toolchain}.json`);
}

/** "0-12,15,20-31" (or "-") as page numbers. */
export function parseRanges(text: string): number[] {
  if (text === '-') return [];
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new XipError(`resident output: bad page range '${part}' in '${text}'; record the profile again (xip profile)`, { exitCode: EXIT.failed });
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let p = a; p <= b; p++) out.push(p);
  }
  return out;
}

/** The output of the guest's `resident` tool: "FILE SIZE PAGES" per line. Lines it could not answer ("?") are skipped. */
export function parseResident(text: string): Map<string, { size: number; pages: number[] }> {
  const out = new Map<string, { size: number; pages: number[] }>();
  for (const line of text.split('\n')) {
    const m = /^(\/\S+) (\d+) ([0-9,-]+)$/.exec(line.trim());
    if (m) out.set(m[1]!, { size: Number(m[2]), pages: parseRanges(m[3]!) });
  }
  return out;
}

export function writeProfile(path: string, p: XipProfile): void {
  writeFileAtomic(path, `${JSON.stringify(p, null, 2)}\n`);
}

export function readProfile(path: string): XipProfile {
  if (!existsSync(path)) throw badInput(`no execution profile at ${path}: record one with xip profile (it boots the router-cramfs image)`);
  return parseJsonText(ProfileSchema, readFileSync(path, 'utf8'), `execution profile ${path}`, 'record it again with xip profile');
}

/**
 * The page chooser of a profile, for mkcramfs: a program's code pages up
 * to the last one the profile saw used (see above; a data page that was
 * read is copied on write anyway, and is not stored in place).
 * A program the profile does not know, or knows with other contents, is a
 * stale profile: refused, so that a rebuilt busybox is never laid out by
 * the pages of another one.
 */
export function profiledPages(p: XipProfile, where: string): (path: string, data: Uint8Array) => number[] {
  return (path, data) => {
    const text = textPages(data);
    if (text.length === 0) return [];
    const f = p.files[path];
    if (!f) throw badInput(`execution profile ${where} has no entry for ${path}: record it again with xip profile`);
    if (f.sha256 !== sha256(data)) throw badInput(`execution profile ${where} was recorded for another ${path} (sha256 differs): record it again with xip profile`);
    const used = text.filter((pg) => f.pages.includes(pg));
    const last = used.length > 0 ? used[used.length - 1]! : -1;
    return text.filter((pg) => pg <= last);
  };
}
