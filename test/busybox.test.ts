import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { sha256 } from '../src/fsutil.ts';
import {
  checkSha256,
  fetchPinned,
  mergeConfig,
  missingFromConfig,
  muslSpecs,
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
  it('the repository pin parses and names busybox and musl-dev:mipsel', () => {
    const pin = readPin(REPO_ROOT);
    assert.equal(pin.source.package, 'busybox');
    assert.equal(pin.libc.package, 'musl-dev');
    assert.equal(pin.libc.arch, 'mipsel');
    assert.ok(Object.keys(pin.source.files).some((f) => f.endsWith('.dsc')));
    assert.ok(Object.keys(pin.source.files).some((f) => f.includes('.orig.tar')));
  });
  it('bad pins are refused with the field named', () => {
    const good = readFileSync(join(REPO_ROOT, 'userspace', 'lwrt', 'busybox.json'), 'utf8');
    const data = JSON.parse(good) as BusyboxPin;
    assert.throws(() => parsePin('{', 'p.json'), /p\.json: not valid JSON/);
    const badSum = structuredClone(data);
    badSum.libc.sha256 = 'abc';
    assert.throws(() => parsePin(JSON.stringify(badSum), 'p.json'), /p\.json: libc\.sha256/);
    const noDsc = structuredClone(data);
    noDsc.source.files = Object.fromEntries(Object.entries(data.source.files).filter(([f]) => !f.endsWith('.dsc')));
    assert.throws(() => parsePin(JSON.stringify(noDsc), 'p.json'), /exactly one \.dsc/);
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

  it('fetchPinned checks files already downloaded and refuses a tampered one (no network needed)', async () => {
    const dir = join(tmp, 'dl');
    mkdirSync(dir);
    const files: Record<string, string> = {};
    const dsc = 'Source: busybox\nVersion: 1:9.9.9-1\n';
    const orig = 'orig tarball bytes';
    writeFileSync(join(dir, 'busybox_9.9.9-1.dsc'), dsc);
    writeFileSync(join(dir, 'busybox_9.9.9.orig.tar.bz2'), orig);
    writeFileSync(join(dir, 'musl-dev_1_mipsel.deb'), 'deb');
    files['busybox_9.9.9-1.dsc'] = sha256(dsc);
    files['busybox_9.9.9.orig.tar.bz2'] = sha256(orig);
    const pin: BusyboxPin = {
      source: { package: 'busybox', version: '1:9.9.9-1', files },
      libc: { package: 'musl-dev', arch: 'mipsel', version: '1', file: 'musl-dev_1_mipsel.deb', sha256: sha256('deb') },
    };
    const log = join(tmp, 'fetch.log');
    await fetchPinned(pin, dir, 'pin.json', log);
    writeFileSync(join(dir, 'busybox_9.9.9.orig.tar.bz2'), 'tampered');
    await assert.rejects(fetchPinned(pin, dir, 'pin.json', log), /busybox_9\.9\.9\.orig\.tar\.bz2: sha256 \S+ does not match/);
    writeFileSync(join(dir, 'busybox_9.9.9.orig.tar.bz2'), orig);
    const wrongVersion: BusyboxPin = { ...pin, source: { ...pin.source, version: '1:9.9.9-2' } };
    await assert.rejects(fetchPinned(wrongVersion, dir, 'pin.json', log), /version 1:9\.9\.9-1 is not 1:9\.9\.9-2/);
  });
});

describe('busybox config', () => {
  const base = '# CONFIG_HTTPD is not set\nCONFIG_LS=y\n# CONFIG_IP is not set\nCONFIG_UDHCPC_DEFAULT_SCRIPT="/old"\n';
  it('mergeConfig sets, unsets and appends symbols', () => {
    const frag = 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\nCONFIG_UDHCPC_DEFAULT_SCRIPT="/usr/share/udhcpc/default.script"\nCONFIG_NEW=y\n# a comment\n';
    const out = mergeConfig(base, frag);
    assert.match(out, /^CONFIG_HTTPD=y$/m);
    assert.match(out, /^# CONFIG_LS is not set$/m);
    assert.doesNotMatch(out, /^CONFIG_LS=y$/m);
    assert.match(out, /^CONFIG_UDHCPC_DEFAULT_SCRIPT="\/usr\/share\/udhcpc\/default.script"$/m);
    assert.match(out, /^CONFIG_NEW=y$/m);
    assert.match(out, /^# CONFIG_IP is not set$/m);
  });
  it('missingFromConfig lists what did not survive', () => {
    const final = 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\n';
    assert.deepEqual(missingFromConfig(final, 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\n# CONFIG_GONE is not set\n'), []);
    assert.deepEqual(missingFromConfig(final, 'CONFIG_IP=y\nCONFIG_HTTPD=y\n# CONFIG_HTTPD is not set\n'), [
      'CONFIG_IP=y',
      '# CONFIG_HTTPD is not set',
    ]);
  });
  it('the repository fragment asks for the applets the router scripts use', () => {
    const frag = readFileSync(join(REPO_ROOT, 'userspace', 'lwrt', 'busybox.config'), 'utf8');
    for (const s of ['STATIC', 'ASH', 'MOUNT', 'IP', 'UDHCPC', 'HTTPD', 'FEATURE_HTTPD_CGI', 'POWEROFF', 'SED', 'UNAME', 'HOSTNAME', 'SLEEP']) {
      assert.match(frag, new RegExp(`^CONFIG_${s}=y$`, 'm'), s);
    }
  });
  it('musl specs point at the extracted musl, link statically', () => {
    const s = muslSpecs('/b/musl', '/b/khdr');
    assert.match(s, /-nostdinc -isystem \/b\/musl\/usr\/include\/mipsel-linux-musl -isystem \/b\/khdr/);
    assert.match(s, /\*startfile:\n\/b\/musl\/usr\/lib\/mipsel-linux-musl\/crt1\.o/);
    assert.match(s, /\*link:\n-nostdlib -static/);
  });
});
