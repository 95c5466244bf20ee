import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { readSeries } from '../src/kernel/patch.ts';
import { exportSeries, SERIES_IDENTITY, withIdentity } from '../src/kernel/series.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-series-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ME = 'Ada Lovelace <ada@example.org>';

describe('the patch series with the sender identity (xip series)', () => {
  it('replaces From: and our Signed-off-by:, keeps other trailers and the diff byte for byte', () => {
    const p = [
      'From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001',
      `From: ${SERIES_IDENTITY}`,
      'Subject: [PATCH 1/2] x',
      '',
      'Body.',
      '',
      'Reviewed-by: Someone Else <se@example.org>',
      `Signed-off-by: ${SERIES_IDENTITY}`,
      '---',
      ' a | 1 +',
      '+Signed-off-by: not a trailer, part of the diff',
      `+From: ${SERIES_IDENTITY}`,
      '',
    ].join('\n');
    const out = withIdentity(p, ME);
    assert.match(out, new RegExp(`^From: ${ME}$`, 'm'));
    assert.match(out, new RegExp(`^Signed-off-by: ${ME}$`, 'm'));
    assert.match(out, /^Reviewed-by: Someone Else <se@example.org>$/m);
    assert.ok(out.endsWith(`+Signed-off-by: not a trailer, part of the diff\n+From: ${SERIES_IDENTITY}\n`));
  });

  it('exports every committed patch, the cover letter included, and nothing names the project identity in a header', () => {
    const out = join(tmp, 'series');
    const files = exportSeries(join(REPO_ROOT, 'kernel', 'patches'), out, ME);
    assert.ok(files.some((f) => f.endsWith('0000-cover-letter.patch')));
    assert.equal(readdirSync(out).length, files.length);
    for (const f of files) {
      const head = readFileSync(f, 'utf8').split('\n---\n')[0]!;
      assert.match(head, new RegExp(`^From: ${ME}$`, 'm'), f);
      assert.doesNotMatch(head, new RegExp(SERIES_IDENTITY.replace(/[.<>]/g, '\\$&')), f);
      assert.doesNotMatch(head, /mips-xip-kernel developers/, f);
    }
  });

  it('the source stage applies the patches but not the cover letter', () => {
    const names = readSeries(join(REPO_ROOT, 'kernel', 'patches')).map((p) => p.name);
    assert.ok(names.length >= 10);
    assert.ok(!names.includes('0000-cover-letter.patch'));
  });

  it('a malformed identity is one clear error, and nothing is written', () => {
    const out = join(tmp, 'bad');
    assert.throws(() => exportSeries(join(REPO_ROOT, 'kernel', 'patches'), out, 'ada@example.org'), /is not 'Full Name <user@example.org>'/);
    assert.throws(() => readdirSync(out), /ENOENT/);
  });

  it('replaces a previous series, but never a directory holding anything else', () => {
    const out = join(tmp, 'again');
    exportSeries(join(REPO_ROOT, 'kernel', 'patches'), out, ME);
    exportSeries(join(REPO_ROOT, 'kernel', 'patches'), out, 'Grace Hopper <grace@example.org>');
    assert.match(readFileSync(join(out, '0000-cover-letter.patch'), 'utf8'), /^Grace Hopper \(\d+\):$/m);
    const mine = join(tmp, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes.txt'), 'keep me');
    assert.throws(() => exportSeries(join(REPO_ROOT, 'kernel', 'patches'), mine, ME), /holds other files \(notes.txt\)/);
    assert.equal(readFileSync(join(mine, 'notes.txt'), 'utf8'), 'keep me');
  });

  it('a directory without patches is one clear error', () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'README'), '');
    assert.throws(() => exportSeries(empty, join(tmp, 'o2'), ME), /no NNNN-\*\.patch files/);
  });
});
