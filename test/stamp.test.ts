import assert from 'node:assert/strict';
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setQuiet } from '../src/log.ts';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { stampPath, userspaceStage } from '../src/pipeline.ts';
import {
  computeToolkitHash,
  HashCache,
  Hasher,
  RACY_MARGIN_MS,
  readStamp,
  runStage,
  toolkitHash,
  treeHash,
  type StageSpec,
} from '../src/stamp.ts';

let dir: string;
before(() => {
  setQuiet(true);
  dir = mkdtempSync(join(tmpdir(), 'xip-stamp-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stage that copies in.txt to out.txt and counts its runs. */
function copyStage(sub: string, extra: Partial<StageSpec> = {}) {
  const d = join(dir, sub);
  mkdirSync(d, { recursive: true });
  const input = join(d, 'in.txt');
  const output = join(d, 'out.txt');
  const stamp = join(d, 'stamp.json');
  if (!existsSync(input)) writeFileSync(input, 'one');
  const state = { runs: 0 };
  const spec = (): StageSpec => ({
    name: `copy ${sub}`,
    stampPath: stamp,
    inputs: (h) => h.file('in', input).value('flag', 'a'),
    outputs: [output],
    run: async () => {
      state.runs++;
      writeFileSync(output, 'x');
    },
    ...extra,
  });
  return { input, output, stamp, state, spec };
}

describe('runStage', () => {
  it('runs a fresh stage, then skips it while nothing changed', async () => {
    const s = copyStage('fresh');
    assert.equal(await runStage(s.spec()), 'built');
    assert.equal(await runStage(s.spec()), 'skipped');
    assert.equal(s.state.runs, 1);
    const st = readStamp(s.stamp);
    assert.ok(st, 'stamp written');
    assert.ok(st.inputs.some((l) => l.startsWith('file in=')));
  });

  it('runs again when an input file changes content', async () => {
    const s = copyStage('changed');
    await runStage(s.spec());
    writeFileSync(s.input, 'two');
    assert.equal(await runStage(s.spec()), 'built');
    assert.equal(s.state.runs, 2);
  });

  it('does not run again for a touched file with the same content', async () => {
    const s = copyStage('touched');
    await runStage(s.spec());
    const t = new Date(Date.now() + 5000);
    utimesSync(s.input, t, t);
    assert.equal(await runStage(s.spec()), 'skipped');
  });

  it('runs again when an output is missing even though the stamp matches', async () => {
    const s = copyStage('missing');
    await runStage(s.spec());
    rmSync(s.output);
    assert.equal(await runStage(s.spec()), 'built');
    assert.equal(s.state.runs, 2);
  });

  it('removes the stamp before running, and an interrupted stage never looks done', async () => {
    const s = copyStage('interrupted');
    await runStage(s.spec());
    writeFileSync(s.input, 'changed');
    let stampDuringRun: boolean | undefined;
    const failing: StageSpec = {
      ...s.spec(),
      run: async () => {
        stampDuringRun = existsSync(s.stamp);
        writeFileSync(s.output, 'half');
        throw new Error('interrupted');
      },
    };
    await assert.rejects(runStage(failing), /interrupted/);
    assert.equal(stampDuringRun, false);
    assert.equal(existsSync(s.stamp), false);
    // Even with the input put back, the stage runs again: there is no stamp.
    writeFileSync(s.input, 'one');
    assert.equal(await runStage(s.spec()), 'built');
  });

  it('fails a stage that did not produce its outputs, and writes no stamp', async () => {
    const s = copyStage('no-output');
    const spec: StageSpec = { ...s.spec(), run: async () => {} };
    await assert.rejects(runStage(spec), /did not produce/);
    assert.equal(existsSync(s.stamp), false);
  });

  it('force runs an up-to-date stage', async () => {
    const s = copyStage('force');
    await runStage(s.spec());
    assert.equal(await runStage({ ...s.spec(), force: true }), 'built');
  });
});

describe('Hasher and treeHash', () => {
  it('labels inputs: the same text under another label is another hash', () => {
    const a = new Hasher().value('x', 'v').digest();
    const b = new Hasher().value('y', 'v').digest();
    const c = new Hasher().value('x', 'v').digest();
    assert.notEqual(a, b);
    assert.equal(a, c);
  });

  it('treats a missing file as an input', () => {
    const a = new Hasher().file('f', join(dir, 'nope')).digest();
    writeFileSync(join(dir, 'nope'), '');
    const b = new Hasher().file('f', join(dir, 'nope')).digest();
    assert.notEqual(a, b);
  });

  it('changes with file content, names, exec bits and new files; ignores excluded names', () => {
    const t = join(dir, 'tree');
    mkdirSync(join(t, 'sub'), { recursive: true });
    writeFileSync(join(t, 'a.c'), 'int a;');
    writeFileSync(join(t, 'sub', 'b.c'), 'int b;');
    const h0 = treeHash(t);
    assert.equal(treeHash(t), h0);
    writeFileSync(join(t, 'a.c'), 'int a2;');
    const h1 = treeHash(t);
    assert.notEqual(h1, h0);
    chmodSync(join(t, 'a.c'), 0o755);
    const h2 = treeHash(t);
    assert.notEqual(h2, h1);
    renameSync(join(t, 'sub', 'b.c'), join(t, 'sub', 'c.c'));
    const h3 = treeHash(t);
    assert.notEqual(h3, h2);
    mkdirSync(join(t, '.git'));
    writeFileSync(join(t, '.git', 'HEAD'), 'x');
    assert.equal(treeHash(t, { exclude: ['.git'] }), h3);
    assert.notEqual(treeHash(t), h3);
  });

  it('HashCache re-hashes a file whose size or mtime changed, and persists', () => {
    const f = join(dir, 'cached.bin');
    const cachePath = join(dir, 'cache.json');
    writeFileSync(f, 'aaaa');
    const c1 = new HashCache(cachePath);
    const h1 = c1.fileHash(f);
    c1.save();
    assert.ok(existsSync(cachePath));
    const c2 = new HashCache(cachePath);
    assert.equal(c2.fileHash(f), h1);
    writeFileSync(f, 'bbbbb');
    assert.notEqual(c2.fileHash(f), h1);
  });
});

describe('HashCache and racy clean files', () => {
  it('a file rewritten at the same size with its mtime put back, right after it was hashed, is hashed again', () => {
    const f = join(dir, 'racy.txt');
    // A whole-millisecond mtime (now), so that it can be put back exactly.
    const t = new Date();
    writeFileSync(f, 'aaaa');
    utimesSync(f, t, t);
    const c = new HashCache();
    const h1 = c.fileHash(f);
    const { mtimeMs, size } = statSync(f);
    writeFileSync(f, 'bbbb');
    utimesSync(f, t, t);
    assert.equal(statSync(f).size, size);
    assert.equal(statSync(f).mtimeMs, mtimeMs);
    const h2 = c.fileHash(f);
    assert.notEqual(h2, h1);
    assert.equal(h2, new HashCache().fileHash(f), 'the hash of the new content');
  });

  it('reuses the entry of a file last written well before it was hashed, re-reads a file written just now', () => {
    const old = join(dir, 'old.txt');
    const fresh = join(dir, 'fresh.txt');
    writeFileSync(old, 'old');
    const past = new Date(Date.now() - 60_000);
    utimesSync(old, past, past);
    writeFileSync(fresh, 'fresh');
    const c = new HashCache();
    const ho = c.fileHash(old);
    const hf = c.fileHash(fresh);
    assert.deepEqual(c.stats, { hits: 0, reads: 2 });
    for (let i = 0; i < 3; i++) {
      assert.equal(c.fileHash(old), ho);
      assert.equal(c.fileHash(fresh), hf);
    }
    // The old file's hash came from the cache every time; the fresh file was read each time.
    assert.deepEqual(c.stats, { hits: 3, reads: 5 });
  });

  it('trusts a saved entry only when the mtime is more than the margin older than its hashing', () => {
    const f = join(dir, 'persisted.txt');
    const cachePath = join(dir, 'racy-cache.json');
    writeFileSync(f, 'content');
    const mtime = new Date(Date.now() - 3_600_000);
    utimesSync(f, mtime, mtime);
    const c1 = new HashCache(cachePath);
    const real = c1.fileHash(f);
    c1.save();
    // Forge the saved hash: what the cache answers shows whether it read the file.
    const forge = (hashedAt: number) => {
      const data = JSON.parse(readFileSync(cachePath, 'utf8')) as Record<string, { key: string; hash: string; hashedAt: number }>;
      data[f] = { ...data[f]!, hash: 'from-the-cache', hashedAt };
      writeFileSync(cachePath, JSON.stringify(data));
    };
    const mt = statSync(f).mtimeMs;
    forge(mt + RACY_MARGIN_MS + 1000);
    assert.equal(new HashCache(cachePath).fileHash(f), 'from-the-cache', 'hashed long after the last write: trusted');
    forge(mt + RACY_MARGIN_MS / 2);
    assert.equal(new HashCache(cachePath).fileHash(f), real, 'hashed within the margin of the last write: read again');
    forge(mt - 1000);
    assert.equal(new HashCache(cachePath).fileHash(f), real, 'written after it was hashed (clock skew): read again');
  });

  it('an old file rewritten at the same size with its old mtime put back (cp -p, touch -r) is hashed again: ctime', async () => {
    const f = join(dir, 'restored.txt');
    writeFileSync(f, 'version 1');
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(f, past, past);
    const c = new HashCache();
    const h1 = c.fileHash(f);
    assert.equal(c.fileHash(f), h1);
    assert.equal(c.stats.hits, 1, 'an old file: the cache is used');
    // File times come from a clock that ticks every few ms: let it move, as it has for any real cp -p.
    await new Promise((r) => setTimeout(r, 50));
    writeFileSync(f, 'version 2');
    utimesSync(f, past, past);
    assert.notEqual(c.fileHash(f), h1);
  });

  it('drops entries of the older cache format (no hashing time)', () => {
    const f = join(dir, 'oldformat.txt');
    const cachePath = join(dir, 'old-format-cache.json');
    writeFileSync(f, 'x');
    const st = statSync(f);
    writeFileSync(cachePath, JSON.stringify({ [f]: { key: `${st.size}:${st.mtimeMs}:${st.ino}`, hash: 'stale' } }));
    assert.notEqual(new HashCache(cachePath).fileHash(f), 'stale');
  });
});

describe('the toolkit in every stamp', () => {
  /** A copy of the toolkit's code (src/ and the lock file) to change. */
  function toolkitCopy(): string {
    const root = mkdtempSync(join(dir, 'toolkit-'));
    cpSync(join(REPO_ROOT, 'src'), join(root, 'src'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package-lock.json'), join(root, 'package-lock.json'));
    return root;
  }

  it('hashes src/ and package-lock.json: a module no stage lists (the ELF reader) changes it', () => {
    const root = toolkitCopy();
    const h0 = computeToolkitHash(root);
    assert.equal(computeToolkitHash(root), h0);
    appendFileSync(join(root, 'src', 'elf', 'elf32.ts'), '\n// changed\n');
    const h1 = computeToolkitHash(root);
    assert.notEqual(h1, h0);
    writeFileSync(join(root, 'src', 'new-module.ts'), 'export {};\n');
    const h2 = computeToolkitHash(root);
    assert.notEqual(h2, h1);
    appendFileSync(join(root, 'package-lock.json'), '\n');
    assert.notEqual(computeToolkitHash(root), h2);
  });

  it('is computed once per process and root', () => {
    assert.match(toolkitHash(), /^[0-9a-f]{64}$/);
    assert.equal(toolkitHash(), toolkitHash(REPO_ROOT));
    const root = toolkitCopy();
    const h0 = toolkitHash(root);
    assert.equal(h0, computeToolkitHash(root));
    appendFileSync(join(root, 'src', 'elf', 'elf32.ts'), '\n// changed\n');
    assert.equal(toolkitHash(root), h0, 'memoized: the code running does not change under it');
    assert.notEqual(computeToolkitHash(root), h0);
  });

  it('a change to any toolkit file runs every stage again', async () => {
    const root = toolkitCopy();
    const stages = ['source', 'userspace', 'kernel', 'image'].map((n) => copyStage(`toolkit-${n}`));
    const spec = (s: (typeof stages)[number]) => ({ ...s.spec(), toolkit: computeToolkitHash(root) });
    for (const s of stages) assert.equal(await runStage(spec(s)), 'built');
    for (const s of stages) assert.equal(await runStage(spec(s)), 'skipped');
    appendFileSync(join(root, 'src', 'elf', 'elf32.ts'), '\n// changed\n');
    for (const s of stages) assert.equal(await runStage(spec(s)), 'built', s.stamp);
    for (const s of stages) {
      assert.equal(s.state.runs, 2);
      assert.ok(readStamp(s.stamp)?.inputs.includes(`value toolkit=${computeToolkitHash(root)}`));
    }
  });

  it('a real stage records the toolkit hash of this checkout (the userspace stage of a staged rootfs)', async () => {
    const rootfs = join(dir, 'staged-rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    writeFileSync(join(rootfs, 'init'), '#!/bin/sh\n', { mode: 0o755 });
    const ctx = makeContext({ rootfs, buildDir: join(dir, 'build') });
    assert.equal(await userspaceStage(ctx), 'built');
    const st = readStamp(stampPath(ctx, 'userspace'));
    assert.ok(st, 'stamp written');
    assert.ok(st.inputs.includes(`value toolkit=${toolkitHash()}`), st.inputs.join('\n'));
    assert.ok(!st.inputs.some((l) => l.includes('src/userspace')), 'no hand-picked toolkit files');
    assert.equal(await userspaceStage(ctx), 'skipped');
  });
});
