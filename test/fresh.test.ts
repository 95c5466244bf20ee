import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAptSources } from '../src/doctor.ts';
import { XipError } from '../src/errors.ts';
import { malta } from '../src/boards/malta.ts';
import { skippedBoards } from '../src/boards/index.ts';
import { powercutRuns } from '../src/settings/powercut.ts';
import { SUITES, skippedSuites } from '../src/testskip.ts';
import { archivesOf, formatFresh, mountsUnder, processesIn, releaseOf, rootSources, testSummary, versionProbes } from '../src/fresh.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-fresh-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('fresh-check pieces', () => {
  it("records the version of each board's cross gcc, binutils and QEMU, each command once", () => {
    assert.deepEqual(versionProbes([malta, { ...malta, name: 'twin' }]), [
      ['node', 'node --version'],
      ['clang', 'clang --version | head -1'],
      ['gcc', 'mipsel-linux-gnu-gcc --version | head -1'],
      ['binutils', 'mipsel-linux-gnu-ld --version | head -1'],
      ['qemu', 'qemu-system-mipsel --version | head -1'],
      ['linux-source-6.12', "dpkg-query -W -f '${Version}\\n' linux-source-6.12"],
    ]);
    const be = { ...malta, name: 'be', crossCompile: 'mips-linux-gnu-', qemu: { ...malta.qemu, binary: 'qemu-system-mips' } };
    const names = versionProbes([malta, be]).map(([n]) => n);
    assert.deepEqual(names.slice(2, 8), ['mipsel-linux-gnu-gcc', 'mips-linux-gnu-gcc', 'mipsel-linux-gnu-ld', 'mips-linux-gnu-ld', 'qemu-system-mipsel', 'qemu-system-mips']);
  });

  it('knows Debian 12 and 13 and what the README installs on each; anything else is bad input', () => {
    assert.equal(releaseOf('13').codename, 'trixie');
    assert.deepEqual(releaseOf('13').prerequisites, ['nodejs', 'npm', 'make', 'git', 'ca-certificates']);
    assert.equal(releaseOf('12').codename, 'bookworm');
    assert.equal(releaseOf('12').node, 'host', 'Debian 12 has no Node 20');
    for (const bad of ['11', '', undefined, 'trixie']) {
      assert.throws(() => releaseOf(bad), (e: unknown) => e instanceof XipError && e.exitCode === 2 && /12 or 13/.test(e.message));
    }
  });

  it("takes the root's archives from the host's apt sources (security apart), in either format", () => {
    const deb822 = parseAptSources([
      {
        name: 'debian.sources',
        text: 'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n',
      },
      { name: 'x.list', text: 'deb https://packages.example/apt cloud-sdk main\n' },
    ]);
    assert.deepEqual(archivesOf(deb822), { main: 'http://mirror.example/debian', security: 'http://mirror.example/debian-security' });
    const oneLine = parseAptSources([{ name: 'sources.list', text: 'deb http://m/debian trixie main\n' }]);
    assert.deepEqual(archivesOf(oneLine), { main: 'http://m/debian', security: undefined });
    assert.throws(() => archivesOf(parseAptSources([{ name: 'x.list', text: 'deb https://packages.example/apt cloud-sdk main\n' }])), /no Debian archive/);
  });

  it('writes the root its release, updates and security suites', () => {
    const s = rootSources('trixie', { main: 'http://m/debian', security: 'http://m/debian-security' });
    const e = parseAptSources([{ name: 'debian.sources', text: s }]);
    assert.deepEqual(e.map((x) => [x.uris[0], x.suites.join(' ')]), [
      ['http://m/debian', 'trixie trixie-updates'],
      ['http://m/debian-security', 'trixie-security'],
    ]);
  });

  it("reads the node test runner's closing lines", () => {
    const lines = ['✔ x (1ms)', 'ℹ tests 312', 'ℹ suites 40', 'ℹ pass 310', 'ℹ fail 1', 'ℹ cancelled 0', 'ℹ skipped 1', 'ℹ todo 0', 'ℹ duration_ms 1'];
    assert.deepEqual(testSummary(lines), { tests: 312, pass: 310, fail: 1, skipped: 1, cancelled: 0 });
    assert.equal(testSummary(['make: *** [Makefile:60: test] Error 1']), undefined, 'no summary is not a pass');
    const text = formatFresh({ debian: '13', commit: 'abcdef0123456789', ok: false, summary: testSummary(lines), seconds: { make: 1.5 }, versions: { qemu: 'QEMU 10.0' }, logs: '/l', date: 'd' });
    assert.match(text, /Debian 13 at abcdef012345: FAILED/);
    assert.match(text, /tests 312: 310 passed, 1 failed, 1 skipped/);
    assert.match(text, /\nfresh-check: 310 passed, 1 failed, 1 skipped$/);
    assert.doesNotMatch(text, /left out/);
    const partial = formatFresh({ debian: '12', commit: 'abcdef0123456789', ok: true, summary: testSummary(lines), seconds: {}, versions: {}, logs: '/l', date: 'd', skippedBoards: ['mt7628', 'ar9331'], skippedSuites: ['router', 'xipchecks'] });
    assert.match(partial, /boards left out \(XIP_TEST_SKIP_BOARDS\): mt7628, ar9331/);
    assert.match(partial, /malta suites left out \(XIP_TEST_SKIP_SUITES\): router, xipchecks/);
  });

  it('XIP_TEST_SKIP_BOARDS: boards but malta, comma-separated; anything else is one line', () => {
    // '' is unset (an explicit undefined would read the variable itself, which CI's Debian 12 root sets).
    assert.deepEqual(skippedBoards(''), []);
    assert.deepEqual(skippedBoards('mt7628, ar9331'), ['mt7628', 'ar9331']);
    assert.deepEqual(skippedBoards('malta-be,mt7628'), ['malta-be', 'mt7628']);
    assert.throws(() => skippedBoards('malta'), /^XipError: XIP_TEST_SKIP_BOARDS: malta cannot be left out \(every other test runs on it\): use malta-be, mt7628, ar9331 \(comma-separated\), or unset it$/);
    assert.throws(() => skippedBoards('mt7628,nosuch'), /^XipError: XIP_TEST_SKIP_BOARDS: no board 'nosuch': use malta-be, mt7628, ar9331/);
  });

  it('XIP_TEST_SKIP_SUITES: the named malta suites, comma-separated; anything else is one line', () => {
    assert.deepEqual(skippedSuites(''), []);
    assert.deepEqual(skippedSuites(' router,xipchecks,router '), ['router', 'xipchecks']);
    assert.throws(() => skippedSuites('router,boot'), /^XipError: XIP_TEST_SKIP_SUITES: no suite 'boot': use flashroot, router, settings, network, size, xipchecks \(comma-separated\), or unset it$/);
    // Each name is a test file that wraps its suites in skippable(name, ...).
    for (const [name, what] of Object.entries(SUITES)) {
      const file = what.split(':')[0]!;
      assert.match(readFileSync(file, 'utf8'), new RegExp(`skippable\\('${name}'`), file);
    }
  });

  it('XIP_POWERCUT_RUNS: a whole number from 1 up, 50 when unset; anything else is one line', () => {
    assert.equal(powercutRuns(''), 50);
    assert.equal(powercutRuns('20'), 20);
    for (const bad of ['0', '-3', '2.5', 'ten', '020']) assert.throws(() => powercutRuns(bad), new RegExp(`XIP_POWERCUT_RUNS='${bad.replace('.', '\\.')}' is not a number of power cuts`));
    const text = formatFresh({ debian: '12', commit: 'abcdef0123456789', ok: true, seconds: {}, versions: {}, logs: '/l', date: 'd', powercutRuns: 20 });
    assert.match(text, /power cuts \(XIP_POWERCUT_RUNS\): 20/);
  });

  it('finds the mounts below a root, deepest first, and only those', () => {
    const info = [
      '22 1 0:21 / /proc rw - proc proc rw',
      '90 1 0:50 / /w/root/proc rw - proc proc rw',
      '91 1 0:51 / /w/root/dev rw - devtmpfs udev rw',
      '92 91 0:52 / /w/root/dev/pts rw - devpts devpts rw',
      '93 1 0:53 / /w/root2/proc rw - proc proc rw',
      '94 1 0:54 / /w/root/with\\040space rw - tmpfs t rw',
    ].join('\n');
    assert.deepEqual(mountsUnder('/w/root', info), ['/w/root/with space', '/w/root/dev/pts', '/w/root/proc', '/w/root/dev']);
  });

  it('finds the processes whose root directory is inside the fresh root', () => {
    const proc = join(tmp, 'proc');
    const mk = (pid: string, root: string) => {
      mkdirSync(join(proc, pid), { recursive: true });
      symlinkSync(root, join(proc, pid, 'root'));
    };
    mk('10', '/');
    mk('11', '/w/root');
    mk('12', '/w/root/srv');
    mk('13', '/w/root2');
    mkdirSync(join(proc, 'self'));
    assert.deepEqual(processesIn('/w/root', proc).sort(), [11, 12]);
  });
});
