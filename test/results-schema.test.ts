import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { saveResults, type Results } from '../src/measure/index.ts';
import { checkResults } from '../src/measure/schema.ts';
import { BEGIN, END, readResults, updateReadme } from '../src/report/readme.ts';

/**
 * One schema for bench/results-*.json: what bench writes and what report
 * reads. The committed files pass; a damaged copy is refused with one line
 * naming the file and its first bad field, and the README is left alone.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-results-schema-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const COMMITTED = ['results-xip_qemu_malta.json', 'results-lwrt_qemu_malta.json'].map((f) => join(REPO_ROOT, 'bench', f));

/** A parsed copy of a committed results file, to damage. */
function copyOf(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

/** The error message of fn, which must throw. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('no error');
}

describe('results schema: the committed results files', () => {
  for (const f of COMMITTED) {
    it(`${f.slice(REPO_ROOT.length + 1)} validates`, () => {
      const c = checkResults(copyOf(f));
      assert.ok(c.ok, c.ok ? '' : c.problem);
      const r = readResults(f);
      assert.equal(r.schema, 1);
      assert.ok(Array.isArray(r.notes));
    });
  }
});

describe('results schema: damaged copies are refused with the file and the field', () => {
  const bad = join(tmp, 'bench-bad');
  mkdirSync(bad);
  const write = (name: string, data: unknown) => {
    const p = join(bad, name);
    writeFileSync(p, JSON.stringify(data, null, 2));
    return p;
  };

  it('a missing field', () => {
    const d = copyOf(COMMITTED[0]!);
    delete d.machine.cpu;
    const p = write('results-missing.json', d);
    const msg = errorOf(() => readResults(p));
    assert.equal(msg, `${p}: not a valid results file: machine.cpu: Required; run make bench to write it again`);
  });

  it('a field of the wrong type, deep in an array', () => {
    const d = copyOf(COMMITTED[0]!);
    d.ram.sizes[1].xip.availableKiB = '14208';
    const p = write('results-type.json', d);
    const msg = errorOf(() => readResults(p));
    assert.match(msg, /results-type\.json: not a valid results file: ram\.sizes\[1\]\.xip\.availableKiB: Expected number, received string;/);
    assert.ok(!msg.includes('\n'), 'one line');
  });

  it('a field the schema does not know (a typo), an empty list of runs, a fractional count', () => {
    const typo = copyOf(COMMITTED[1]!);
    typo.minRam.xip.minKib = typo.minRam.xip.minKiB;
    assert.match(errorOf(() => readResults(write('results-typo.json', typo))), /: minRam\.xip: Unrecognized key\(s\) in object: 'minKib'/);
    const empty = copyOf(COMMITTED[0]!);
    empty.bootCost.vmlinuz = [];
    assert.match(errorOf(() => readResults(write('results-empty.json', empty))), /: bootCost\.vmlinuz: Array must contain at least 1 element/);
    const frac = copyOf(COMMITTED[0]!);
    frac.kernelSizes.stock.text = 1.5;
    assert.match(errorOf(() => readResults(write('results-frac.json', frac))), /: kernelSizes\.stock\.text: Expected integer, received float/);
  });

  it('another version, or no JSON object at all', () => {
    const d = copyOf(COMMITTED[0]!);
    d.schema = 2;
    assert.match(errorOf(() => readResults(write('results-v2.json', d))), /results-v2\.json: not a results file of this version \(schema 2, this version reads 1\)/);
    assert.match(errorOf(() => readResults(write('results-array.json', []))), /results-array\.json: not a valid results file: not a JSON object/);
  });
});

describe('results schema: the README is made from validated data only', () => {
  it('a damaged results file stops the report before the README is touched', () => {
    const repo = join(tmp, 'repo');
    mkdirSync(join(repo, 'bench'), { recursive: true });
    for (const f of COMMITTED) cpSync(f, join(repo, 'bench', f.slice(f.lastIndexOf('/') + 1)));
    writeFileSync(join(repo, 'README.md'), `# R\n${BEGIN}\nold section\n${END}\n`);
    // The good files alone regenerate it.
    assert.equal(updateReadme(repo).changed, true);
    const good = readFileSync(join(repo, 'README.md'), 'utf8');
    assert.match(good, /#### xip_qemu_malta_defconfig/);
    assert.match(good, /#### lwrt_qemu_malta_defconfig/);
    // Now damage one (the second one read): nothing may be written.
    const d = copyOf(COMMITTED[1]!);
    d.ram.sizes[0].stock.totalKiB = null;
    const p = join(repo, 'bench', 'results-lwrt_qemu_malta.json');
    writeFileSync(p, JSON.stringify(d));
    writeFileSync(join(repo, 'README.md'), `# R\n${BEGIN}\nold section\n${END}\n`);
    const before = statSync(join(repo, 'README.md')).mtimeMs;
    assert.throws(() => updateReadme(repo), (e: Error) => {
      assert.equal(e.message, `${p}: not a valid results file: ram.sizes[0].stock.totalKiB: Expected number, received null; run make bench to write it again`);
      return true;
    });
    assert.equal(readFileSync(join(repo, 'README.md'), 'utf8'), `# R\n${BEGIN}\nold section\n${END}\n`);
    assert.equal(statSync(join(repo, 'README.md')).mtimeMs, before);
  });
});

describe('results schema: saveResults checks what it writes', () => {
  it('writes valid results as report reads them back', () => {
    const r = readResults(COMMITTED[0]!);
    const p = join(tmp, 'save', 'results-ok.json');
    saveResults(r, p);
    assert.deepEqual(readResults(p), r);
  });

  it('refuses results that do not fit (NaN becomes null in JSON), keeps the old file, puts the numbers aside', () => {
    const p = join(tmp, 'save', 'results-refused.json');
    saveResults(readResults(COMMITTED[0]!), p);
    const old = readFileSync(p, 'utf8');
    const r: Results = readResults(COMMITTED[0]!);
    r.ram!.reservedPerPageBytes.xip = Number.NaN;
    assert.equal(
      errorOf(() => saveResults(r, p)),
      `${p}: results do not fit the results schema (ram.reservedPerPageBytes.xip: Expected number, received null); not written, the numbers are in ${p}.rejected`,
    );
    assert.equal(readFileSync(p, 'utf8'), old, 'the results file is unchanged');
    assert.ok(existsSync(`${p}.rejected`));
    assert.equal(JSON.parse(readFileSync(`${p}.rejected`, 'utf8')).ram.reservedPerPageBytes.xip, null);
  });
});
