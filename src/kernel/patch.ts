import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { EXIT, XipError } from '../errors.ts';
import { sha256 } from '../fsutil.ts';
import { run } from '../proc.ts';

/**
 * The kernel patch series: kernel/patches/*.patch, applied in name order
 * (NNNN-*.patch from git format-patch) with GNU patch -p1. GNU patch rather
 * than git apply: the prepared tree lives inside this repository's build/,
 * where git would find the outer repository and apply relative to it.
 */
export interface PatchFile {
  name: string;
  path: string;
  sha256: string;
  /** Files the patch changes, creates or deletes (paths relative to the tree). */
  files: string[];
}

export function readSeries(dir: string): PatchFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    // The cover letter (0000-cover-letter.patch) describes the series and changes no file.
    .filter((n) => n.endsWith('.patch') && n !== '0000-cover-letter.patch')
    .sort()
    .map((name) => {
      const path = join(dir, name);
      const text = readFileSync(path, 'utf8');
      return { name, path, sha256: sha256(text), files: filesOfPatch(text) };
    });
}

/** Paths a unified diff touches, with the a/ and b/ prefixes (-p1) removed. */
export function filesOfPatch(text: string): string[] {
  const files = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(?:---|\+\+\+) (\S+)/.exec(line);
    if (!m || !m[1] || m[1] === '/dev/null') continue;
    const p = m[1].replace(/^[^/]+\//, '');
    if (p) files.add(p);
  }
  return [...files].sort();
}

/** Every file touched by any patch of the series. */
export function seriesFiles(series: readonly PatchFile[]): string[] {
  return [...new Set(series.flatMap((p) => p.files))].sort();
}

const PATCH_ARGS = ['-p1', '--batch', '--forward', '--no-backup-if-mismatch', '--reject-file=-'];

/**
 * Apply the series to tree. Each patch is checked (--dry-run) against the
 * tree as the earlier patches left it before it is applied; when one does
 * not apply, the patches already applied are reversed, so the tree is left
 * as it was, and the error names the patch and the file.
 */
export async function applySeries(tree: string, series: readonly PatchFile[], log?: string): Promise<void> {
  const applied: PatchFile[] = [];
  try {
    for (const p of series) {
      const check = await run('patch', [...PATCH_ARGS, '--dry-run', '-d', tree, '-i', p.path], {
        allowFailure: true,
        tailLines: 200,
        what: `patch --dry-run ${p.name}`,
        log,
      });
      if (check.code !== 0) throw patchError(p, check.tail);
      const r = await run('patch', [...PATCH_ARGS, '--silent', '-d', tree, '-i', p.path], {
        allowFailure: true,
        tailLines: 200,
        what: `patch ${p.name}`,
        log,
      });
      if (r.code !== 0) {
        // The dry run passed, so this is unexpected; the patch may be half applied.
        throw patchError(p, r.tail);
      }
      applied.push(p);
    }
  } catch (err) {
    await revert(tree, applied, log);
    throw err;
  }
}

async function revert(tree: string, applied: readonly PatchFile[], log?: string): Promise<void> {
  for (const p of [...applied].reverse()) {
    await run('patch', [...PATCH_ARGS.filter((a) => a !== '--forward'), '-R', '--silent', '-d', tree, '-i', p.path], {
      allowFailure: true,
      what: `patch -R ${p.name}`,
      log,
    });
  }
}

/** Turn GNU patch's output into one line: which patch, which file, why. */
export function patchError(p: PatchFile, output: readonly string[]): XipError {
  const where = failingFile(output) ?? p.files[0] ?? '(no file)';
  const why = output.find((l) => /FAILED|can't find file|Reversed|malformed|Only garbage|No file to patch/i.test(l));
  const reason = why ? `: ${why.trim()}` : '';
  return new XipError(
    `kernel patch ${p.name} does not apply to ${where}${reason}; rebase it on this kernel tree (the tree is left unpatched)`,
    { exitCode: EXIT.badInput, details: output.filter((l) => l.trim() !== '').slice(-15) },
  );
}

function failingFile(output: readonly string[]): string | undefined {
  let current: string | undefined;
  for (const line of output) {
    const m = /^(?:checking|patching) file (.+)$/.exec(line);
    if (m?.[1]) {
      current = m[1].replace(/^'(.*)'$/, '$1');
      continue;
    }
    const header = /^\|\+\+\+ (\S+)/.exec(line);
    if (header?.[1] && header[1] !== '/dev/null') current = header[1].replace(/^[^/]+\//, '');
    if (/FAILED|No file to patch|Reversed \(or previously applied\)/.test(line) && current) {
      return current;
    }
  }
  return undefined;
}

/** Relative display of a patch path, for messages. */
export function seriesLabel(series: readonly PatchFile[], repo: string): string {
  return series.length === 0 ? 'empty series' : series.map((p) => relative(repo, p.path)).join(', ');
}
