/**
 * Malformed-input corpus for the ELF32 reader: truncations, seeded random
 * mutations and hand-made nasty headers (see test/fixtures/elf/corpus.ts).
 * Every case must either parse or throw a one-line badInput XipError
 * (exit code 2). The corpus runs in a worker so that a hang is caught and
 * named instead of freezing the test run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { CorpusResult } from './fixtures/elf/corpus.ts';
import { findRealKernels, IN_CI } from './fixtures/elf/kernels.ts';

/** A case that makes no progress for this long is a hang. */
const STALL_MS = 20_000;
const SEED = Number(process.env.ELF_CORPUS_SEED ?? 0x5eed1);

function runInWorker(basePath: string | null, truncations: number, mutations: number): Promise<CorpusResult> {
  const progress = new SharedArrayBuffer(4);
  const seen = new Int32Array(progress);
  // Workers do not inherit the tsx loader from the test runner: a tiny
  // bootstrap registers it, then loads the TypeScript worker.
  const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(new URL('./fixtures/elf/corpus-worker.ts', import.meta.url).href)}); });`;
  const worker = new Worker(bootstrap, {
    eval: true,
    workerData: { basePath, opts: { seed: SEED, truncations, mutations }, progress },
    // A runaway allocation of JS objects ends the worker instead of the machine.
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
  return new Promise((resolve, reject) => {
    let last = -1;
    const watchdog = setInterval(() => {
      const now = Atomics.load(seen, 0);
      if (now === last) {
        clearInterval(watchdog);
        void worker.terminate();
        reject(new Error(`corpus stalled for ${STALL_MS / 1000}s at case #${now} (seed ${SEED}): the reader hangs on it`));
      }
      last = now;
    }, STALL_MS);
    worker.once('message', (r: CorpusResult) => {
      clearInterval(watchdog);
      void worker.terminate();
      resolve(r);
    });
    worker.once('error', (err) => {
      clearInterval(watchdog);
      reject(err);
    });
    worker.once('exit', (code) => {
      clearInterval(watchdog);
      reject(new Error(`corpus worker exited with code ${code} before reporting`));
    });
  });
}

function check(r: CorpusResult, t: { diagnostic(msg: string): void }): void {
  t.diagnostic(`base ${r.base} (${r.baseBytes} bytes), seed ${SEED}`);
  t.diagnostic(`${r.cases} cases in ${(r.ms / 1000).toFixed(2)}s: ${r.parsed} parsed, ${r.rejected} rejected with exit code 2`);
  for (const [kind, k] of Object.entries(r.byKind)) t.diagnostic(`  ${kind}: ${k.cases} cases, ${k.parsed} parsed, ${k.rejected} rejected`);
  for (const [reason, n] of r.topReasons.slice(0, 8)) t.diagnostic(`  ${n} x ${reason}`);
  assert.deepEqual(r.failures, [], 'every case parses or fails with a one-line badInput XipError');
  assert.equal(r.parsed + r.rejected, r.cases);
  // The corpus must exercise both outcomes, and each kind of case must exist.
  assert.ok(r.parsed > 0 && r.rejected > 0, 'corpus has both accepted and rejected cases');
  assert.ok((r.byKind.truncation?.rejected ?? 0) > 0, 'truncations are rejected');
  assert.ok((r.byKind.nasty?.rejected ?? 0) >= 30, 'nasty headers are rejected');
}

describe('ELF32 reader on a malformed corpus', () => {
  it('synthetic base: truncations, mutations, nasty headers', async (t) => {
    const r = await runInWorker(null, 1000, 2500);
    assert.ok(r.cases >= 3000, `a few thousand cases (got ${r.cases})`);
    check(r, t);
  });

  const kernels = findRealKernels();
  if (kernels.length === 0) {
    it('real vmlinux base (none built yet)', (t) => {
      if (IN_CI) assert.fail('no vmlinux found under build/**/kbuild/: `make test` must build the kernels first');
      t.skip('no vmlinux found under build/**/kbuild/: build a kernel to run this corpus');
    });
  } else {
    // One real kernel is enough: the xip one if there is one (it has the most structure).
    const k = kernels.find((x) => x.variant === 'xip') ?? kernels[0]!;
    it(`real vmlinux base: ${k.path}`, async (t) => {
      const r = await runInWorker(k.path, 1000, 2500);
      assert.ok(r.cases >= 3000, `a few thousand cases (got ${r.cases})`);
      check(r, t);
    });
  }
});
