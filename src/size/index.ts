import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { badInput, firstLine } from '../errors.ts';
import { sizeOfBuild } from './build.ts';
import type { SizeNode, SizeReport } from './types.ts';

export { sizeOfBuild, sizeOfBuiltDir } from './build.ts';
export { diffSizes, overGrowth, buildLabel, flashUsedOf } from './diff.ts';
export { formatDiff, formatSize } from './format.ts';
export type { SizeNode, SizeReport } from './types.ts';

function isNode(v: unknown): v is SizeNode {
  if (typeof v !== 'object' || v === null) return false;
  const n = v as Partial<SizeNode>;
  return typeof n.name === 'string' && typeof n.bytes === 'number' && typeof n.kind === 'string' && (n.children === undefined || (Array.isArray(n.children) && n.children.every(isNode)));
}

/**
 * A size report from what the user names: a build directory (measured
 * now) or a file `xip size --json` wrote earlier (a build since cleaned,
 * or one from another machine).
 */
export function loadSize(what: string): SizeReport {
  const path = resolve(what);
  if (!existsSync(path)) throw badInput(`${what}: no such build directory or size file; give build/<board>/<config>/<variant>-<toolchain> or a file from xip size --json`);
  if (statSync(path).isDirectory()) return sizeOfBuild(path);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw badInput(`${what}: not JSON (${firstLine(err)}); give a build directory or a file from xip size --json`);
  }
  const r = (typeof data === 'object' && data !== null ? data : {}) as Partial<SizeReport>;
  if (r.schema !== 1 || !isNode(r.ram) || (r.flash !== undefined && !isNode(r.flash)) || typeof r.build?.config !== 'string') {
    throw badInput(`${what}: not a size report (schema 1); write one with xip size --json > FILE`);
  }
  return r as SizeReport;
}
