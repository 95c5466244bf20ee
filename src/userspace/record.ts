import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { userspacePaths, type BuildContext } from '../context.ts';
import { EXIT, XipError } from '../errors.ts';
import { sha256 } from '../fsutil.ts';
import { build, bootBuilt, image } from '../pipeline.ts';
import { routerBootSession } from './routerboot.ts';
import { parseResident, profilePath, writeProfile, type XipProfile } from './xipprofile.ts';

export const PROFILE_WORKLOAD = 'router boot to LWRT-READY (init, DHCP, httpd), GET /cgi-bin/status, GET /cgi-bin/resident';

/**
 * Record an execution profile (xipprofile.ts) on ctx, the all-compressed
 * root: build and image it if needed, boot it with the router's workload,
 * read the page-cache pages of every program through /cgi-bin/resident,
 * and write the profile with each program's sha256 (from the staged root).
 */
export async function recordProfile(ctx: BuildContext, memMiB: number): Promise<{ path: string; profile: XipProfile }> {
  await build(ctx);
  await image(ctx);
  const session = await routerBootSession(ctx, { checkStatus: true, checkResident: true });
  const boot = await bootBuilt(ctx, { memMiB, timeoutMs: 150_000, session });
  const answer = session.record.resident;
  if (!boot.ok || !answer || answer.status !== 200) {
    throw new XipError(`xip profile: the recording boot failed (${boot.failure?.line ?? session.record.error ?? `GET /cgi-bin/resident: ${answer?.status ?? 'no answer'}`}); log ${boot.log ?? ctx.bootLog}`, { exitCode: EXIT.failed });
  }
  const staged = join(userspacePaths(ctx).dir, 'rootfs');
  const files: XipProfile['files'] = {};
  for (const [path, f] of parseResident(answer.body)) {
    files[path] = { sha256: sha256(readFileSync(join(staged, path))), size: f.size, pages: f.pages };
  }
  if (Object.keys(files).length === 0) throw new XipError(`xip profile: /cgi-bin/resident listed no program (it answered ${JSON.stringify(answer.body.slice(0, 120))}); log ${boot.log ?? ctx.bootLog}`, { exitCode: EXIT.failed });
  const profile: XipProfile = { board: ctx.board.name, workload: PROFILE_WORKLOAD, recorded: new Date().toISOString(), files };
  const path = profilePath(ctx);
  writeProfile(path, profile);
  return { path, profile };
}
