import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Board } from '../boards/index.ts';
import { badInput, XipError } from '../errors.ts';
import { sha256, writeFileAtomic } from '../fsutil.ts';
import { run } from '../proc.ts';

/** The Debian release of this host (VERSION_CODENAME of /etc/os-release), or undefined. */
export function hostCodename(osRelease = '/etc/os-release'): string | undefined {
  if (!existsSync(osRelease)) return undefined;
  return /^VERSION_CODENAME=["']?([a-z]+)/m.exec(readFileSync(osRelease, 'utf8'))?.[1];
}

export interface UbootBinary {
  /** u-boot.bin as the package ships it (not swapped). */
  path: string;
  package: string;
  version: string;
  sha256: string;
}

/** The pinned package of this host's Debian release; throws naming the releases that have one. */
export function ubootPin(board: Board, codename = hostCodename()): { package: string; version: string; sha256: string; binary: string } {
  const u = board.uboot?.stock;
  if (!u) throw badInput(`board ${board.name} has no stock U-Boot package: use ${board.uboot ? 'LOADER=uboot (built from source) or ' : ''}LOADER=shim`);
  const pin = codename === undefined ? undefined : u.pins[codename];
  if (!pin) {
    throw badInput(
      `no ${u.package} pinned for Debian '${codename ?? 'unknown'}' (this host's /etc/os-release): LOADER=uboot-stock runs on Debian ${Object.keys(u.pins).join(' and ')}; use LOADER=uboot (built from source) or shim here`,
    );
  }
  return { package: u.package, version: pin.version, sha256: pin.sha256, binary: u.binary };
}

/**
 * The stock U-Boot of the board: `apt-get download` of the pinned package
 * (never installed into the host), its sha256 checked, u-boot.bin taken out
 * with dpkg-deb. Kept under <buildDir>/uboot/ and reused while its sha256
 * matches; every step writes a temporary name first.
 */
export async function fetchUboot(board: Board, buildDir: string): Promise<UbootBinary> {
  const pin = ubootPin(board);
  const dir = join(buildDir, 'uboot', `${pin.package}_${pin.version}`);
  const deb = join(dir, `${pin.package}.deb`);
  const bin = join(dir, 'u-boot.bin');
  const done = { path: bin, package: pin.package, version: pin.version, sha256: pin.sha256 };
  if (existsSync(deb) && existsSync(bin) && sha256(readFileSync(deb)) === pin.sha256) return done;
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const log = join(tmp, 'fetch.log');
    await run('apt-get', ['download', `${pin.package}=${pin.version}`], {
      cwd: tmp,
      log,
      what: `apt-get download ${pin.package}=${pin.version} (if apt cannot find it: apt-get update; the pin is in src/boards/${board.name}.ts)`,
    });
    const got = readdirSync(tmp).find((n) => n.endsWith('.deb'));
    if (!got) throw new XipError(`apt-get download ${pin.package}=${pin.version} left no .deb in ${tmp}`);
    const sum = sha256(readFileSync(join(tmp, got)));
    if (sum !== pin.sha256) {
      throw new XipError(`${got}: sha256 ${sum}, the pin says ${pin.sha256}: the archive's package is not the one this toolkit was tested with; refusing it`);
    }
    await run('dpkg-deb', ['-x', join(tmp, got), join(tmp, 'x')], { log, what: `dpkg-deb -x ${got}` });
    const inner = join(tmp, 'x', pin.binary);
    if (!existsSync(inner)) throw new XipError(`${got} has no ${pin.binary}`);
    writeFileAtomic(join(tmp, 'u-boot.bin'), readFileSync(inner));
    renameSync(join(tmp, got), join(tmp, `${pin.package}.deb`));
    rmSync(join(tmp, 'x'), { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return done;
}
