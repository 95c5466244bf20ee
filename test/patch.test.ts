import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { XipError } from '../src/errors.ts';
import { applySeries, filesOfPatch, readSeries, seriesFiles } from '../src/kernel/patch.ts';
import { treeHash } from '../src/stamp.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xip-patch-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function makeTree(name: string): string {
  const t = join(dir, name);
  mkdirSync(join(t, 'arch', 'mips', 'kernel'), { recursive: true });
  writeFileSync(join(t, 'arch', 'mips', 'kernel', 'head.S'), 'line 1\nline 2\nline 3\n');
  writeFileSync(join(t, 'init.c'), 'int main;\n');
  return t;
}

/** A -p1 unified diff changing one line of a file. */
function diff(file: string, before: string[], from: string, to: string): string {
  const lines = before.map((l) => (l === from ? `-${from}\n+${to}` : ` ${l}`)).join('\n');
  return `From 0000 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] MIPS: test\n\n---\n` +
    `diff --git a/${file} b/${file}\n--- a/${file}\n+++ b/${file}\n@@ -1,${before.length} +1,${before.length} @@\n${lines}\n`;
}

const NEW_FILE = `diff --git a/arch/mips/kernel/new.c b/arch/mips/kernel/new.c
new file mode 100644
--- /dev/null
+++ b/arch/mips/kernel/new.c
@@ -0,0 +1 @@
+int new_file;
`;

function writeSeries(name: string, patches: Record<string, string>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  for (const [n, text] of Object.entries(patches)) writeFileSync(join(d, n), text);
  return d;
}

describe('patch series', () => {
  it('reads *.patch in name order and lists the files each touches', () => {
    const d = writeSeries('order', {
      '0002-b.patch': diff('init.c', ['int main;'], 'int main;', 'int main2;'),
      '0001-a.patch': NEW_FILE,
      'README': 'not a patch',
    });
    const s = readSeries(d);
    assert.deepEqual(s.map((p) => p.name), ['0001-a.patch', '0002-b.patch']);
    assert.deepEqual(s[0]?.files, ['arch/mips/kernel/new.c']);
    assert.deepEqual(seriesFiles(s), ['arch/mips/kernel/new.c', 'init.c']);
    assert.equal(s[0]?.sha256.length, 64);
  });

  it('an absent or empty patches directory is an empty series', async () => {
    assert.deepEqual(readSeries(join(dir, 'does-not-exist')), []);
    const t = makeTree('empty');
    const h = treeHash(t);
    await applySeries(t, readSeries(writeSeries('empty-series', {})));
    assert.equal(treeHash(t), h);
  });

  it('filesOfPatch ignores /dev/null and strips a/ b/', () => {
    assert.deepEqual(filesOfPatch(NEW_FILE), ['arch/mips/kernel/new.c']);
    assert.deepEqual(filesOfPatch('--- a/x/y.c\t2020-01-01\n+++ b/x/y.c\t2020-01-01\n'), ['x/y.c']);
  });

  it('applies a series in order (later patches may build on earlier ones)', async () => {
    const t = makeTree('apply');
    const head = ['line 1', 'line 2', 'line 3'];
    const d = writeSeries('apply-series', {
      '0001-one.patch': diff('arch/mips/kernel/head.S', head, 'line 2', 'line two'),
      '0002-two.patch': diff('arch/mips/kernel/head.S', ['line 1', 'line two', 'line 3'], 'line two', 'line 2b'),
      '0003-new.patch': NEW_FILE,
    });
    await applySeries(t, readSeries(d));
    assert.equal(readFileSync(join(t, 'arch/mips/kernel/head.S'), 'utf8'), 'line 1\nline 2b\nline 3\n');
    assert.equal(readFileSync(join(t, 'arch/mips/kernel/new.c'), 'utf8'), 'int new_file;\n');
  });

  it('a patch that does not apply names the patch and the file, and leaves the tree as it was', async () => {
    const t = makeTree('fail');
    const h = treeHash(t);
    const d = writeSeries('fail-series', {
      '0001-good.patch': diff('arch/mips/kernel/head.S', ['line 1', 'line 2', 'line 3'], 'line 2', 'line two'),
      '0002-new.patch': NEW_FILE,
      '0003-bad.patch': diff('init.c', ['int other;'], 'int other;', 'int x;'),
    });
    await assert.rejects(applySeries(t, readSeries(d)), (err: unknown) => {
      assert.ok(err instanceof XipError);
      assert.match(err.message, /0003-bad\.patch/);
      assert.match(err.message, /init\.c/);
      assert.equal(err.exitCode, 2);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
    assert.equal(treeHash(t), h, 'earlier patches reverted, new file removed');
  });

  it('a patch for a file that is not there names that file', async () => {
    const t = makeTree('nofile');
    const d = writeSeries('nofile-series', {
      '0001-missing.patch': diff('drivers/missing.c', ['a'], 'a', 'b'),
    });
    await assert.rejects(applySeries(t, readSeries(d)), /0001-missing\.patch does not apply to drivers\/missing\.c/);
  });
});
