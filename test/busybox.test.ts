import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { EXIT, XipError } from '../src/errors.ts';
import { sha256 } from '../src/fsutil.ts';
import {
  checkSha256,
  fetchPinned,
  fetchSource,
  muslArchOf,
  muslConfigureArgs,
  muslKey,
  muslSpecs,
  muslTarget,
  parseDscVersion,
  parsePin,
  readPin,
  upstreamVersion,
  type BusyboxPin,
} from '../src/userspace/busybox.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-busybox-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('versions', () => {
  it('upstream version of a Debian version (epoch and revision dropped)', () => {
    assert.equal(upstreamVersion('1:1.35.0-4+deb12u1'), '1.35.0');
    assert.equal(upstreamVersion('1.2.3-1'), '1.2.3');
    assert.equal(upstreamVersion('2.0'), '2.0');
    assert.equal(upstreamVersion('1:2.0-rc1-3'), '2.0-rc1');
  });
  it('Version field of a .dsc', () => {
    const dsc = 'Format: 3.0 (quilt)\nSource: busybox\nBinary: busybox\nArchitecture: any\nVersion: 1:1.35.0-4+deb12u1\nMaintainer: x\n';
    assert.equal(parseDscVersion(dsc), '1:1.35.0-4+deb12u1');
    assert.equal(parseDscVersion('Source: busybox\n'), undefined);
  });
});

describe('the pin file', () => {
  it('the repository pin parses and names the busybox and musl source packages', () => {
    const pin = readPin(REPO_ROOT);
    assert.equal(pin.source.package, 'busybox');
    assert.equal(pin.libc.package, 'musl');
    for (const pkg of [pin.source, pin.libc]) {
      assert.equal(Object.keys(pkg.files).filter((f) => f.endsWith('.dsc')).length, 1, pkg.package);
      assert.ok(Object.keys(pkg.files).some((f) => f.includes('.orig.tar')), pkg.package);
      assert.ok(Object.keys(pkg.files).some((f) => f.includes('.debian.tar')), pkg.package);
    }
  });
  it('bad pins are refused with the field named', () => {
    const good = readFileSync(join(REPO_ROOT, 'userspace', 'lwrt', 'busybox.json'), 'utf8');
    const data = JSON.parse(good) as BusyboxPin;
    assert.doesNotThrow(() => parsePin(good, 'p.json'));
    assert.throws(() => parsePin('{', 'p.json'), /p\.json: not valid JSON/);
    const dsc = Object.keys(data.libc.files).find((f) => f.endsWith('.dsc'))!;
    const badSum = structuredClone(data);
    badSum.libc.files[dsc] = 'abc';
    assert.throws(() => parsePin(JSON.stringify(badSum), 'p.json'), new RegExp(`p\\.json: libc\\.files\\.${dsc.replace(/\./g, '\\.')}`));
    const binaryLibc = structuredClone(data) as unknown as { libc: Record<string, unknown> };
    binaryLibc.libc = { package: 'musl-dev', arch: 'mipsel', version: '1.2.3-1', file: 'musl-dev_1.2.3-1_mipsel.deb', sha256: 'ab'.repeat(32) };
    assert.throws(() => parsePin(JSON.stringify(binaryLibc), 'p.json'), /p\.json: libc\.package/);
    const noDsc = structuredClone(data);
    noDsc.source.files = Object.fromEntries(Object.entries(data.source.files).filter(([f]) => !f.endsWith('.dsc')));
    assert.throws(() => parsePin(JSON.stringify(noDsc), 'p.json'), /source\.files must list exactly one \.dsc/);
    const noMuslDsc = structuredClone(data);
    noMuslDsc.libc.files = Object.fromEntries(Object.entries(data.libc.files).filter(([f]) => !f.endsWith('.dsc')));
    assert.throws(() => parsePin(JSON.stringify(noMuslDsc), 'p.json'), /libc\.files must list exactly one \.dsc/);
  });
});

describe('checksums', () => {
  it('a mismatch is an error naming the file, both sums and the pin', () => {
    assert.doesNotThrow(() => checkSha256('/x/a.deb', 'ab'.repeat(32), 'ab'.repeat(32), 'pin.json'));
    assert.throws(
      () => checkSha256('/x/a.deb', 'ab'.repeat(32), 'cd'.repeat(32), 'pin.json'),
      (e: unknown) =>
        e instanceof XipError &&
        e.message.includes('a.deb') &&
        e.message.includes('ab'.repeat(32)) &&
        e.message.includes('cd'.repeat(32)) &&
        e.message.includes('pin.json'),
    );
  });

  /** A source package's files in dir, and its pin entry. */
  function fakeSource(dir: string, name: string, version: string): BusyboxPin['source'] {
    mkdirSync(dir, { recursive: true });
    const files: Record<string, string> = {};
    const dsc = `Source: ${name}\nVersion: ${version}\n`;
    const orig = `${name} orig tarball bytes`;
    const up = version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
    writeFileSync(join(dir, `${name}_${up}-1.dsc`), dsc);
    writeFileSync(join(dir, `${name}_${up}.orig.tar.gz`), orig);
    files[`${name}_${up}-1.dsc`] = sha256(dsc);
    files[`${name}_${up}.orig.tar.gz`] = sha256(orig);
    return { package: name, version, files };
  }

  it('fetchPinned checks both source packages already downloaded and refuses a tampered one (no network needed)', async () => {
    const dir = join(tmp, 'dl');
    const source = fakeSource(dir, 'busybox', '1:9.9.9-1');
    const libc = { ...fakeSource(dir, 'musl', '8.8.8-1'), package: 'musl' as const };
    const pin: BusyboxPin = { source, libc };
    const log = join(tmp, 'fetch.log');
    await fetchPinned(pin, dir, 'pin.json', log);
    writeFileSync(join(dir, 'busybox_9.9.9.orig.tar.gz'), 'tampered');
    await assert.rejects(fetchPinned(pin, dir, 'pin.json', log), /busybox_9\.9\.9\.orig\.tar\.gz: sha256 \S+ does not match/);
    writeFileSync(join(dir, 'busybox_9.9.9.orig.tar.gz'), 'busybox orig tarball bytes');
    writeFileSync(join(dir, 'musl_8.8.8.orig.tar.gz'), 'tampered');
    await assert.rejects(fetchPinned(pin, dir, 'pin.json', log), /musl_8\.8\.8\.orig\.tar\.gz: sha256 \S+ does not match/);
    writeFileSync(join(dir, 'musl_8.8.8.orig.tar.gz'), 'musl orig tarball bytes');
    await fetchPinned(pin, dir, 'pin.json', log);
    const wrongVersion: BusyboxPin = { ...pin, libc: { ...pin.libc, version: '8.8.8-2' } };
    await assert.rejects(fetchPinned(wrongVersion, dir, 'pin.json', log), /version 8\.8\.8-1 is not 8\.8\.8-2/);
  });

  describe('fetchSource with a fake apt-get on PATH', () => {
    const bin = join(tmp, 'fakebin');
    const served = join(tmp, 'served');
    const calls = join(tmp, 'apt-calls');
    const oldPath = process.env.PATH;
    // Copies what served/ holds into the current directory, as apt-get source --download-only does; logs its arguments.
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'apt-get'),
      `#!/bin/sh\necho "$*" >> '${calls}'\n[ -e '${served}/FAIL' ] && { echo 'E: You must put some source URIs in your sources.list' >&2; exit 100; }\ncp '${served}'/* .\n`,
    );
    chmodSync(join(bin, 'apt-get'), 0o755);
    process.env.PATH = `${bin}:${oldPath}`;
    after(() => {
      process.env.PATH = oldPath;
    });

    it('downloads with apt-get source --download-only PKG=VERSION, checks every file, moves them in', async () => {
      const pkg = fakeSource(served, 'musl', '7.7.7-1');
      const dir = join(tmp, 'dl-fresh');
      await fetchSource(pkg, dir, 'pin.json', join(tmp, 'fresh.log'));
      assert.deepEqual(readdirSync(dir).sort(), Object.keys(pkg.files).sort());
      assert.equal(readFileSync(calls, 'utf8').trim().split('\n').at(-1), 'source --download-only musl=7.7.7-1');
      // A second call finds everything in place and runs no apt-get.
      const n = readFileSync(calls, 'utf8').split('\n').length;
      await fetchSource(pkg, dir, 'pin.json', join(tmp, 'fresh.log'));
      assert.equal(readFileSync(calls, 'utf8').split('\n').length, n);
    });

    it('a file the archive serves with another sha256 is refused and not kept', async () => {
      rmSync(served, { recursive: true, force: true });
      const pkg = fakeSource(served, 'musl', '6.6.6-1');
      writeFileSync(join(served, 'musl_6.6.6.orig.tar.gz'), 'another upload');
      const dir = join(tmp, 'dl-bad');
      await assert.rejects(fetchSource(pkg, dir, 'pin.json', join(tmp, 'bad.log')), /musl_6\.6\.6\.orig\.tar\.gz: sha256 \S+ does not match \S+ pinned in pin\.json/);
      assert.deepEqual(readdirSync(dir), []);
    });

    it('a file the archive does not serve is named', async () => {
      rmSync(served, { recursive: true, force: true });
      const pkg = fakeSource(served, 'musl', '5.5.5-1');
      rmSync(join(served, 'musl_5.5.5.orig.tar.gz'));
      await assert.rejects(fetchSource(pkg, join(tmp, 'dl-missing'), 'pin.json', join(tmp, 'missing.log')), /fetched no musl_5\.5\.5\.orig\.tar\.gz/);
    });

    it('a failing apt-get is an environment error that says how to get a deb-src entry', async () => {
      rmSync(served, { recursive: true, force: true });
      const pkg = fakeSource(served, 'musl', '4.4.4-1');
      writeFileSync(join(served, 'FAIL'), '');
      await assert.rejects(
        fetchSource(pkg, join(tmp, 'dl-fail'), 'pin.json', join(tmp, 'fail.log')),
        (e: unknown) =>
          e instanceof XipError &&
          e.exitCode === EXIT.environment &&
          /apt-get source musl=4\.4\.4-1 failed/.test(e.message) &&
          /deb-src entry for Debian bookworm/.test(e.message) &&
          /xip doctor --install/.test(e.message) &&
          !/add-architecture/.test(e.message),
      );
      assert.equal(existsSync(join(tmp, 'dl-fail', 'musl_4.4.4-1.dsc')), false);
    });
  });
});

describe('musl from source', () => {
  it('the configure target is the cross compiler triple, for either endianness', () => {
    assert.equal(muslTarget('mipsel-linux-gnu-'), 'mipsel-linux-gnu');
    assert.equal(muslTarget('mips-linux-gnu-'), 'mips-linux-gnu');
    assert.equal(muslTarget('/opt/cross/bin/mips-linux-gnu-'), 'mips-linux-gnu');
    assert.throws(() => muslTarget('mipsel-linux-gnu'), /not a cross compiler prefix/);
    assert.throws(() => muslTarget('gcc-'), /not a cross compiler prefix/);
    assert.throws(() => muslTarget(''), /not a cross compiler prefix/);
  });
  it('configure arguments come from the board: compiler, target, CPU flags; static only', () => {
    const le = muslConfigureArgs('mipsel-linux-gnu-', ['-march=mips32r2']);
    assert.deepEqual(le, [
      '--target=mipsel-linux-gnu',
      'CROSS_COMPILE=mipsel-linux-gnu-',
      'CC=mipsel-linux-gnu-gcc',
      'CFLAGS=-march=mips32r2',
      '--prefix=/',
      '--disable-shared',
      '--disable-wrapper',
    ]);
    const be = muslConfigureArgs('mips-linux-gnu-', ['-march=mips32r2']);
    assert.ok(be.includes('--target=mips-linux-gnu') && be.includes('CC=mips-linux-gnu-gcc'));
    assert.ok(!be.some((a) => a.includes('mipsel')));
  });
  it("musl's variant from its config.mak", () => {
    assert.equal(muslArchOf('AR = x\nARCH = mips\nSUBARCH = el\nASMSUBARCH = el\n'), 'mipsel');
    assert.equal(muslArchOf('ARCH = mips\nSUBARCH = \n'), 'mips');
    assert.equal(muslArchOf('ARCH = mips\nSUBARCH = el-sf\n'), 'mipsel-sf');
    assert.throws(() => muslArchOf('CC = gcc\n'), /no ARCH line/);
  });
  it('the musl cache key follows the musl pin and the board, not the busybox pin', () => {
    const pin = readPin(REPO_ROOT);
    const k = muslKey(pin, 'mipsel-linux-gnu-', ['-march=mips32r2']);
    assert.match(k, /^[0-9a-f]{16}$/);
    assert.equal(muslKey(structuredClone(pin), 'mipsel-linux-gnu-', ['-march=mips32r2']), k);
    assert.notEqual(muslKey(pin, 'mips-linux-gnu-', ['-march=mips32r2']), k);
    assert.notEqual(muslKey(pin, 'mipsel-linux-gnu-', ['-march=mips32']), k);
    assert.notEqual(muslKey({ ...pin, libc: { ...pin.libc, version: '1.2.3-2' } }, 'mipsel-linux-gnu-', ['-march=mips32r2']), k);
    assert.equal(muslKey({ ...pin, source: { ...pin.source, version: '1:1.36.0-1' } }, 'mipsel-linux-gnu-', ['-march=mips32r2']), k);
  });
});

describe('busybox config', () => {
  it('the repository fragment asks for the applets the router scripts use', () => {
    const frag = readFileSync(join(REPO_ROOT, 'userspace', 'lwrt', 'busybox.config'), 'utf8');
    for (const s of ['STATIC', 'ASH', 'MOUNT', 'IP', 'UDHCPC', 'HTTPD', 'FEATURE_HTTPD_CGI', 'POWEROFF', 'SED', 'UNAME', 'HOSTNAME', 'SLEEP']) {
      assert.match(frag, new RegExp(`^CONFIG_${s}=y$`, 'm'), s);
    }
  });
  it('musl specs point at the installed musl prefix, link statically', () => {
    const s = muslSpecs('/b/musl', '/b/khdr');
    assert.match(s, /-nostdinc -isystem \/b\/musl\/include -isystem \/b\/khdr/);
    assert.match(s, /\*link_libgcc:\n-L\/b\/musl\/lib /);
    assert.match(s, /\*startfile:\n\/b\/musl\/lib\/crt1\.o \/b\/musl\/lib\/crti\.o/);
    assert.match(s, /\*endfile:\ncrtend\.o%s \/b\/musl\/lib\/crtn\.o/);
    assert.match(s, /\*link:\n%\{EB\} %\{EL\} -nostdlib -static/);
    // The compiler's own cc1 spec stays in front (it maps -EL/-EB, which gcc 14 always passes, to -mel/-meb).
    assert.match(s, /%rename cc1 old_cc1\n\n\*cc1:\n%\(old_cc1\) -nostdinc /);
  });
});
