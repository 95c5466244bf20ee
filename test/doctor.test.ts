import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  aptCommand,
  checkTools,
  debSrcFrom,
  hasDebSrc,
  parseAptSources,
  SOURCE_SUITE,
  doctor,
  installMethod,
  missingPackages,
  parseVersion,
  registeredBoards,
  renderTable,
  requirementsFor,
  toolChecks,
  versionAtLeast,
  type ToolCheck,
} from '../src/doctor.ts';
import { crossIncludeDir, type BoardData } from '../src/boards/board.ts';
import { malta } from '../src/boards/malta.ts';
import { XipError } from '../src/errors.ts';

/** Capture what a function writes to stdout. */
async function stdoutOf(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const orig = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await fn();
    return { code, out };
  } finally {
    process.stdout.write = orig;
  }
}

const fake = (name: string, pkg: string, needed: string, found: string | undefined): ToolCheck => ({
  name,
  pkg,
  needed,
  probe: () => found,
});

describe('versions', () => {
  it('parses the first dotted version of --version output', () => {
    assert.equal(parseVersion('Debian clang version 14.0.6'), '14.0.6');
    assert.equal(parseVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)'), '7.2.22');
    assert.equal(parseVersion('mipsel-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0'), '12.2.0');
    assert.equal(parseVersion('GNU Make 4.3'), '4.3');
    assert.equal(parseVersion('no digits'), undefined);
  });

  it('compares dotted versions numerically', () => {
    assert.ok(versionAtLeast('14.0.6', '13.0.1'));
    assert.ok(versionAtLeast('2.40', '2.25'));
    assert.ok(!versionAtLeast('2.9', '2.25'));
    assert.ok(versionAtLeast('7.2', '7.2.0'));
    assert.ok(!versionAtLeast('7.1.9', '7.2'));
    assert.ok(versionAtLeast('0.1', 'any'));
  });
});

describe('tool table', () => {
  it('covers every host tool the build needs', () => {
    const pkgs = toolChecks().map((c) => c.pkg);
    for (const p of [
      'clang',
      'lld',
      'llvm',
      'binutils-mipsel-linux-gnu',
      'gcc-mipsel-linux-gnu',
      'qemu-system-mips',
      'flex',
      'bison',
      'bc',
      'cpio',
      'xz-utils',
      'libelf-dev',
      'libssl-dev',
      'make',
      'linux-source-6.12',
      // Recommends of other packages that the build and tests need: named, never assumed.
      'linux-libc-dev-mipsel-cross',
      'dpkg-dev',
      'util-linux',
      'mount',
      'u-boot-tools',
    ]) {
      assert.ok(pkgs.includes(p), p);
    }
    for (const c of toolChecks()) assert.ok(c.why && c.why.length > 5, `${c.name} says why it is needed`);
    // The firmware packages QEMU only recommends are never needed.
    for (const p of ['ipxe-qemu', 'seabios', 'qemu-system-data']) assert.ok(!pkgs.includes(p), p);
    // fresh-check's tools are needed only for it.
    assert.equal(toolChecks().find((c) => c.pkg === 'debootstrap')?.optional, true);
    assert.equal(toolChecks({ freshCheck: true }).find((c) => c.pkg === 'debootstrap')?.optional, false);
  });

  it('marks missing and too-old tools and lists their packages once', () => {
    const rows = checkTools([
      fake('a', 'pkg-a', '1.0', '2.0'),
      fake('b', 'pkg-b', '3.0', '2.5'),
      fake('c', 'pkg-c', 'any', undefined),
      fake('c2', 'pkg-c', 'any', undefined),
      { ...fake('d', 'pkg-d', 'any', undefined), optional: true },
    ]);
    assert.deepEqual(
      rows.map((r) => [r.name, r.ok, r.problem]),
      [
        ['a', true, undefined],
        ['b', false, 'too old (need 3.0)'],
        ['c', false, 'missing'],
        ['c2', false, 'missing'],
        ['d', true, 'missing'],
      ],
    );
    assert.deepEqual(missingPackages(rows), ['pkg-b', 'pkg-c']);
    const table = renderTable(rows);
    assert.match(table, /^b\s+>= 3\.0\s+2\.5\s+too old \(need 3\.0\)\s+pkg-b$/m);
    assert.match(table, /^d\s+any\s+-\s+not needed\s+pkg-d$/m);
  });

  it('installs as root directly, through sudo otherwise, else not at all', () => {
    assert.equal(installMethod(0, false), 'root');
    assert.equal(installMethod(1000, true), 'sudo');
    assert.equal(installMethod(1000, false), 'none');
    assert.deepEqual(aptCommand(['a', 'b']), ['apt-get', 'install', '-y', '--no-install-recommends', 'a', 'b']);
  });
});

describe("the boards' host tools", () => {
  /** A board with malta's machine but another byte order: other cross tools and headers, the same QEMU package. */
  const be: BoardData = {
    ...malta,
    name: 'be',
    crossCompile: 'mips-linux-gnu-',
    hostPackages: { ...malta.hostPackages, binutils: 'binutils-mips-linux-gnu', gcc: 'gcc-mips-linux-gnu', uapiHeaders: 'linux-libc-dev-mips-cross' },
    qemu: { ...malta.qemu, binary: 'qemu-system-mips' },
  };
  const rows = (checks: ToolCheck[]) => checks.map((c) => [c.name, c.pkg, c.needed, c.why]);
  const named = (checks: ToolCheck[], name: string) => checks.find((c) => c.name === name);

  it("come from the board: its cross tools, UAPI headers and QEMU, with the board's packages", () => {
    const checks = requirementsFor([malta]);
    const p = malta.hostPackages;
    assert.equal(named(checks, `${malta.crossCompile}ld`)?.pkg, p.binutils);
    assert.equal(named(checks, `${malta.crossCompile}gcc`)?.pkg, p.gcc);
    assert.equal(named(checks, malta.qemu.binary)?.pkg, p.qemu);
    assert.equal(checks.find((c) => c.pkg === p.uapiHeaders)?.name, 'mipsel kernel UAPI headers');
    assert.equal(crossIncludeDir(malta), '/usr/mipsel-linux-gnu/include', 'where the UAPI header check looks (linux/if.h)');
    // The minimum versions and reasons of before the boards were data.
    assert.deepEqual(rows(checks.filter((c) => Object.values(p).includes(c.pkg))), [
      ['mipsel-linux-gnu-ld', 'binutils-mipsel-linux-gnu', '2.25', 'assembler and linker of the kernel and shim'],
      ['mipsel-linux-gnu-gcc', 'gcc-mipsel-linux-gnu', '5.1', 'TOOLCHAIN=gcc kernel; musl and busybox of the router'],
      ['mipsel kernel UAPI headers', 'linux-libc-dev-mipsel-cross', 'any', 'linux/*.h for busybox (only a Recommends of the cross gcc)'],
      ['qemu-system-mipsel', 'qemu-system-mips', '7.2', 'boots and tests (no firmware package needed)'],
    ]);
  });

  it('is the list of every registered board', () => {
    assert.deepEqual(rows(toolChecks({ freshCheck: true })), rows(requirementsFor(registeredBoards(), { freshCheck: true })));
  });

  it('lists a tool two boards share once, and names the boards of a tool only some need', () => {
    assert.deepEqual(rows(requirementsFor([malta, { ...malta, name: 'twin' }])), rows(requirementsFor([malta])));
    const both = requirementsFor([malta, be]);
    assert.equal(both.filter((c) => c.name === 'clang').length, 1);
    assert.equal(named(both, 'mips-linux-gnu-ld')?.why, 'be: assembler and linker of the kernel and shim');
    assert.equal(named(both, 'mipsel-linux-gnu-ld')?.why, 'malta: assembler and linker of the kernel and shim');
    assert.equal(named(both, 'mips kernel UAPI headers')?.pkg, 'linux-libc-dev-mips-cross');
    // Two QEMU binaries from one package: both checked, the package installed once.
    assert.deepEqual(both.filter((c) => c.pkg === 'qemu-system-mips').map((c) => c.name), ['qemu-system-mipsel', 'qemu-system-mips']);
    const allMissing = checkTools(both.map((c) => ({ ...c, optional: false, probe: () => undefined })));
    assert.equal(missingPackages(allMissing).filter((p) => p === 'qemu-system-mips').length, 1);
  });
});

describe('xip doctor', () => {
  it('exits 0 when everything is there and prints JSON with --json', async () => {
    const r = await stdoutOf(() => doctor({ json: true, checks: [fake('a', 'pkg-a', '1.0', '1.5')] }));
    assert.equal(r.code, 0);
    const j = JSON.parse(r.out) as { ok: boolean; tools: { name: string; found: string }[] };
    assert.equal(j.ok, true);
    assert.equal(j.tools[0]?.found, '1.5');
  });

  it('exits 3 when something is missing', async () => {
    const r = await stdoutOf(() => doctor({ checks: [fake('a', 'pkg-a', 'any', undefined)] }));
    assert.equal(r.code, 3);
    assert.match(r.out, /pkg-a/);
  });

  it('--install with neither root nor sudo prints the exact apt-get line and fails', async () => {
    await assert.rejects(
      doctor({ install: true, method: 'none', checks: [fake('a', 'pkg-a', 'any', undefined), fake('b', 'pkg-b', 'any', undefined)] }),
      (e: unknown) =>
        e instanceof XipError && e.exitCode === 3 && e.message.includes('apt-get install -y --no-install-recommends pkg-a pkg-b'),
    );
  });
});

describe('apt setup for the router userspace (deb-src for the pinned suite)', () => {
  const deb822 = {
    name: '/etc/apt/sources.list.d/debian.sources',
    text: 'Types: deb\nURIs: http://archive.example/debian\nSuites: trixie trixie-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://archive.example/debian-security\nSuites: trixie-security\nComponents: main\n',
  };
  it('parses both formats: deb822 stanzas and one-line entries with options', () => {
    const e = parseAptSources([deb822, { name: '/etc/apt/sources.list', text: '# c\ndeb [arch=amd64 signed-by=/x.gpg] http://a/debian bookworm main contrib\n' }]);
    assert.deepEqual(e[0], { types: ['deb'], uris: ['http://archive.example/debian'], suites: ['trixie', 'trixie-updates'], components: ['main'], signedBy: '/k.gpg' });
    assert.equal(e[1]?.uris[0], 'http://archive.example/debian-security');
    assert.deepEqual(e[2], { types: ['deb'], uris: ['http://a/debian'], suites: ['bookworm'], components: ['main', 'contrib'], signedBy: '/x.gpg' });
  });
  it('sees a deb-src entry only for the pinned suite (bookworm) and main', () => {
    assert.equal(SOURCE_SUITE, 'bookworm');
    assert.equal(hasDebSrc([deb822]), false);
    assert.equal(hasDebSrc([{ name: 'x.sources', text: 'Types: deb deb-src\nURIs: u\nSuites: bookworm\nComponents: main\n' }]), true);
    assert.equal(hasDebSrc([{ name: 'x.sources', text: 'Types: deb-src\nURIs: u\nSuites: trixie\nComponents: main\n' }]), false, 'another suite');
    assert.equal(hasDebSrc([{ name: 'x.sources', text: 'Enabled: no\nTypes: deb-src\nURIs: u\nSuites: bookworm\nComponents: main\n' }]), false, 'disabled');
    assert.equal(hasDebSrc([{ name: 'sources.list', text: '# deb-src commented\ndeb-src http://a/debian bookworm main\n' }]), true);
    assert.equal(hasDebSrc([{ name: 'sources.list', text: '# deb-src http://a/debian bookworm main\n' }]), false);
  });
  it('derives deb-src for bookworm from the archive of the deb entries (not the security archive), with its key', () => {
    const s = debSrcFrom([deb822], 'bookworm', '/fallback.gpg');
    assert.equal(s?.path, '/etc/apt/sources.list.d/xip-deb-src.sources');
    const body = s!.text.replace(/^#.*\n/gm, '');
    assert.equal(body, 'Types: deb-src\nURIs: http://archive.example/debian\nSuites: bookworm\nComponents: main\nSigned-By: /k.gpg\n');
    // A one-line entry without a key: the archive keyring.
    const l = debSrcFrom([{ name: '/etc/apt/sources.list', text: 'deb http://a/debian trixie main\n# x\n' }], 'bookworm', '/fallback.gpg');
    assert.match(l!.text, /^URIs: http:\/\/a\/debian\nSuites: bookworm\nComponents: main\nSigned-By: \/fallback\.gpg$/m);
    assert.equal(hasDebSrc([{ name: l!.path, text: l!.text }]), true, 'what it writes satisfies the check');
    assert.equal(debSrcFrom([{ name: '/etc/apt/sources.list', text: '# nothing\n' }]), undefined);
  });
  it('--install without root or sudo says how to set up apt by hand', async () => {
    const setup: ToolCheck = { ...fake('apt deb-src entry', '', 'any', undefined), setup: 'deb-src' };
    await assert.rejects(doctor({ install: true, method: 'none', checks: [setup] }), (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /deb-src entry for Debian bookworm/);
      assert.doesNotMatch(e.message, /apt-get install -y --no-install-recommends\s*$/);
      return true;
    });
  });
  it('a missing setup item fails the check but is not an apt package', async () => {
    const setup: ToolCheck = { ...fake('apt deb-src entry', '', 'any', undefined), setup: 'deb-src' };
    const r = await stdoutOf(() => doctor({ checks: [setup, fake('a', 'pkg-a', 'any', '1.0')] }));
    assert.equal(r.code, 3);
    assert.match(r.out, /apt deb-src entry .*missing .*\(apt setup\)/);
    assert.deepEqual(missingPackages(checkTools([setup])), []);
  });
});
