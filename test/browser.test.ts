import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { EXIT, XipError } from '../src/errors.ts';
import { inspectPage } from '../src/report/browser.ts';
import { failOnEscapes } from './fixtures/escapes.ts';

/**
 * The DevTools client against the real headless Chromium (Debian package
 * chromium). Without it every test here fails with the message that says
 * how to install it: a report that cannot be checked is not a pass. Nothing
 * may escape as an unhandled rejection (failOnEscapes).
 */
failOnEscapes();
const dir = mkdtempSync(join(tmpdir(), 'xip-browser-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function page(name: string, body: string): string {
  const path = join(dir, name);
  const head = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${name}</title></head>\n<body>\n`;
  writeFileSync(path, `${head}${body}\n</body></html>\n`);
  return path;
}

/** Processes whose command line contains `text` (read from /proc, so no pgrep needed). */
function processesNaming(text: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) pids.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

test('an inline SVG: the value, no errors, no requests, a screenshot of the viewport size', async () => {
  const htmlPath = page(
    'svg.html',
    `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100">
  <rect x="0" y="0" width="80" height="80" fill="#c00"/>
  <rect x="100" y="0" width="80" height="80" fill="#0c0"/>
  <rect x="200" y="0" width="80" height="80" fill="#00c"/>
</svg>`,
  );
  const r = await inspectPage({
    htmlPath,
    evaluate: "document.querySelectorAll('rect').length",
    viewport: { width: 640, height: 480 },
    screenshot: true,
  });
  assert.equal(r.value, 3);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.externalRequests, []);
  assert.ok(r.png, 'a screenshot');
  const png = Buffer.from(r.png.buffer, r.png.byteOffset, r.png.byteLength);
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [640, 480]);
});

test('console.error and an uncaught exception are errors, with their place in the page', async () => {
  const htmlPath = page(
    'errors.html',
    `<script>
console.log('not an error');
console.error('boom');
</script>
<script>
throw new Error('kaboom');
</script>`,
  );
  const r = await inspectPage({ htmlPath, evaluate: '1' });
  const url = pathToFileURL(htmlPath).href; // lines 6 and 9 of the file (the body starts on line 4)
  assert.ok(r.errors.includes(`console.error: boom (${url}:6)`), r.errors.join('\n'));
  assert.ok(r.errors.includes(`Uncaught Error: kaboom (${url}:9)`), r.errors.join('\n'));
  assert.equal(r.errors.length, 2, r.errors.join('\n'));
  assert.equal(r.value, 1);
});

test('an image from another host is an external request', async () => {
  // Loopback only (the discard port, closed here): the request is seen and
  // refused, nothing leaves the machine. The image is dropped again once
  // requested, so a slow refusal does not hold back the load event.
  const htmlPath = page(
    'external.html',
    `<img src="http://127.0.0.1:9/x.png" alt="">
<script>setTimeout(() => document.querySelector('img').removeAttribute('src'), 200);</script>`,
  );
  const r = await inspectPage({ htmlPath, evaluate: 'document.images.length' });
  assert.ok(r.externalRequests.includes('http://127.0.0.1:9/x.png'), r.externalRequests.join('\n'));
  assert.equal(r.value, 1);
});

test('the value of a promise is awaited; an exception in evaluate is an XipError naming it', async () => {
  const htmlPath = page('plain.html', '<p>plain</p>');
  const r = await inspectPage({ htmlPath, evaluate: 'new Promise((ok) => setTimeout(() => ok({ p: [1, "two"] }), 50))' });
  assert.deepEqual(r.value, { p: [1, 'two'] });
  await assert.rejects(inspectPage({ htmlPath, evaluate: 'nope.length' }), (e: unknown) => {
    assert.ok(e instanceof XipError);
    assert.match(e.message, /evaluating 'nope\.length' .* failed: Uncaught ReferenceError: nope is not defined/);
    return true;
  });
});

test('a waitFor that never comes true times out, and no process of the browser is left', async () => {
  // The browser's profile directory is made in os.tmpdir(): a directory of
  // this test's own, so its path finds this run's processes and no others.
  const mine = mkdtempSync(join(dir, 'tmp-'));
  const htmlPath = page('never.html', '<p>waiting</p>');
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = mine;
  let during: number[] = [];
  const sample = setTimeout(() => (during = processesNaming(mine)), 2500);
  const start = Date.now();
  try {
    await assert.rejects(inspectPage({ htmlPath, evaluate: '1', waitFor: 'window.never === true', timeoutMs: 5000 }), (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.equal(e.exitCode, EXIT.failed);
      assert.match(e.message, /^chromium: no answer within 5 s \(waitFor 'window\.never === true' to become true\); last output: /);
      return true;
    });
  } finally {
    clearTimeout(sample);
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  const ms = Date.now() - start;
  assert.ok(ms >= 5000 && ms < 12_000, `rejected after ${ms} ms`);
  assert.ok(during.length >= 2, `the browser ran (${during.length} processes during the run)`);
  assert.deepEqual(processesNaming(mine), [], 'no process names the profile after the rejection');
  assert.deepEqual(readdirSync(mine), [], 'the profile directory was removed');
});

test('no browser: fails with how to install it', async () => {
  await assert.rejects(
    inspectPage({ htmlPath: page('x.html', ''), evaluate: '1', chromium: join(dir, 'no-such-chromium') }),
    (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.equal(e.message, 'chromium not found: install it with xip doctor --browser --install (Debian package chromium)');
      assert.equal(e.exitCode, EXIT.environment);
      return true;
    },
  );
});

test('a browser that exits at once: its exit code and its last output', async () => {
  const fake = join(dir, 'exits-at-once');
  writeFileSync(fake, `#!/bin/sh\necho 'first line' >&2\necho 'Missing X server or $DISPLAY' >&2\nexit 7\n`);
  chmodSync(fake, 0o755);
  await assert.rejects(inspectPage({ htmlPath: page('y.html', ''), evaluate: '1', chromium: fake }), (e: unknown) => {
    assert.ok(e instanceof XipError);
    assert.match(e.message, /^chromium exited \(exit code 7\) while waiting for .*; last output: /);
    assert.ok(e.message.endsWith('last output: first line | Missing X server or $DISPLAY'), e.message);
    return true;
  });
});

test('another file next to the page is outside it too; the page itself and data: URLs are not', async () => {
  writeFileSync(join(dir, 'helper.js'), 'window.helped = true;');
  const htmlPath = page('sibling.html', `<script src="helper.js"></script><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt=""><a href="#x" id="x">x</a>`);
  const r = await inspectPage({ htmlPath, evaluate: 'window.helped === true' });
  assert.equal(r.value, true);
  assert.deepEqual(r.externalRequests, [pathToFileURL(join(dir, 'helper.js')).href]);
});
