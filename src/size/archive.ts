import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { badInput } from '../errors.ts';

/**
 * The members of a Unix ar archive as the kernel's build makes them:
 * vmlinux.a and the lib.a files are thin archives (`ar cDPrST`), whose
 * members are only names of object files next to the archive. A member of
 * a regular archive is given with its bytes instead.
 */
export interface ArchiveMember {
  /** Path of the object file (thin archives: resolved against the archive's directory). */
  path: string;
  /** The member's bytes, for a regular archive only. */
  data?: Uint8Array;
}

const MAGIC = '!<arch>\n';
const THIN = '!<thin>\n';
const HEADER = 60;

export function readArchive(file: string): ArchiveMember[] {
  const buf = readFileSync(file);
  const magic = buf.subarray(0, 8).toString('latin1');
  if (magic !== MAGIC && magic !== THIN) throw badInput(`${file}: not an ar archive; rebuild the kernel (xip build)`);
  const thin = magic === THIN;
  const out: ArchiveMember[] = [];
  let longNames = '';
  let off = 8;
  while (off + HEADER <= buf.length) {
    const hdr = buf.subarray(off, off + HEADER).toString('latin1');
    const rawName = hdr.slice(0, 16).trimEnd();
    const size = Number.parseInt(hdr.slice(48, 58).trim(), 10);
    if (!Number.isFinite(size) || hdr.slice(58, 60) !== '`\n') throw badInput(`${file}: damaged archive header at byte ${off}; rebuild the kernel (xip build)`);
    const dataStart = off + HEADER;
    // The symbol index (/ and /SYM64/) and the long-name table (//) are stored even in a thin archive.
    const special = rawName === '/' || rawName === '/SYM64/' || rawName === '//';
    const stored = !thin || special;
    if (rawName === '//') longNames = buf.subarray(dataStart, dataStart + size).toString('latin1');
    else if (!special) {
      let name: string;
      // A long name: "/<offset in the name table>", followed in thin archives by more fields.
      const long = /^\/(\d+)/.exec(rawName);
      if (long) {
        const at = Number(long[1]);
        const end = longNames.indexOf('\n', at);
        name = longNames.slice(at, end < 0 ? undefined : end).replace(/\/$/, '');
      } else name = rawName.replace(/\/$/, '');
      out.push(thin ? { path: join(dirname(file), name) } : { path: name, data: buf.subarray(dataStart, dataStart + size) });
    }
    off = dataStart + (stored ? size : 0);
    off += off % 2;
  }
  return out;
}
