import { FLASH_ROUTER_TOOLCHAIN } from '../src/userspace/router.ts';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type Toolchain } from '../src/context.ts';
import { readImageReport } from '../src/image/stage.ts';
import { inspectPage } from '../src/report/browser.ts';
import type { SizeDiff } from '../src/size/diff.ts';
import type { SizeReport } from '../src/size/types.ts';
import { runXip, xipLogged } from './fixtures/cli.ts';
import { checkSizeAddsUp, checkSums, findNode, sizeOf } from './fixtures/size.ts';
import { skippable } from './fixtures/skip.ts';

/**
 * `xip size`, `xip size --diff` and `xip report --html` on real builds: the
 * minimal XIP kernel, the router (lwrt_qemu_malta_defconfig, its initramfs
 * and deflated data) and the stock minimal kernel, built through the CLI
 * (up to date after the earlier integration tests; the stock one is reused
 * by integration-stock). The attribution must add up at every level to the
 * image's own regions and to vmlinux's own sections, the diff's levels to
 * its totals, and the HTML page must draw its treemaps in a real browser
 * (Debian's chromium, headless) without an error or a request for anything
 * outside the file.
 */
const toolchain = (mergeEnv({}).toolchain ?? 'clang') as Toolchain;
const minimal = makeContext({ variant: 'xip', toolchain });
const router = makeContext({ config: 'lwrt_qemu_malta_defconfig', variant: 'xip', toolchain });
const stock = makeContext({ variant: 'stock', toolchain });
// The router in flash is built with gcc (FLASH_ROUTER_TOOLCHAIN: clang's does not fit the flash).
const flashRoot = makeContext({ config: 'lwrt_qemu_malta_defconfig', variant: 'xip', toolchain: FLASH_ROUTER_TOOLCHAIN, userspace: 'router-xip' });
const tmp = mkdtempSync(join(tmpdir(), 'xip-size-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const xip = (args: string[]) => runXip(['--toolchain', toolchain, ...args], { timeoutMs: 5 * 60 * 1000 });

skippable('size', () => {
  describe(`xip size and the HTML size report (${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
    it('has the builds: minimal and router XIP with images, the router with its root in flash, stock minimal', async () => {
      const root = ['--config', router.config, '--userspace', 'router-xip', '--toolchain', FLASH_ROUTER_TOOLCHAIN];
      for (const args of [['build'], ['image'], ['--config', router.config, 'build'], ['--config', router.config, 'image'], [...root, 'build'], [...root, 'image'], ['--variant', 'stock', 'build']]) {
        const r = await xipLogged(['--toolchain', toolchain, ...args], 80 * 60 * 1000);
        assert.equal(r.code, 0, `xip ${args.join(' ')}\n${r.out}`);
      }
    });

    for (const ctx of [minimal, router]) {
      it(`${ctx.config}: flash and RAM add up at every level to the image's regions and vmlinux's RAM sections`, async () => {
        await checkSizeAddsUp(ctx);
      });
    }

    it('router: the initramfs by file (estimated shares of the gzip stream), busybox the largest', async () => {
      const r = await sizeOf(router.variantDir);
      const rd = findNode(r.flash, 'initramfs')!;
      const files = (rd.children ?? []).filter((c) => c.kind === 'file');
      assert.ok(files.length >= 5, files.map((f) => f.name).join(', '));
      assert.equal(files[0]!.name, '/bin/busybox');
      assert.ok(files.every((f) => f.estimated === true));
    });

    it('router-xip: the cramfs root by file, exact: what each file keeps in place and what is compressed', async () => {
      const r = await sizeOf(flashRoot.variantDir);
      checkSums(r.flash!);
      const region = findNode(r.flash, 'root filesystem (cramfs)')!;
      assert.equal(region.bytes, readImageReport(flashRoot)!.rootfs!.bytes);
      const bb = findNode(region, '/bin/busybox')!;
      assert.ok(bb.estimated !== true);
      assert.ok((bb.xipBytes ?? 0) > 100 * 1024 && bb.xipBytes! % 4096 === 0 && bb.xipBytes! < bb.bytes, JSON.stringify(bb));
      const text = await xip(['--config', router.config, '--userspace', 'router-xip', '--toolchain', FLASH_ROUTER_TOOLCHAIN, 'size']);
      assert.match(text.stdout, /flash: root filesystem files \(cramfs\)\n.*in place.*compressed/);
    });

    it('the text report shows regions, subsystems, objects and symbols of flash and RAM', async () => {
      const r = await xip(['--config', router.config, 'size', '--top', '5']);
      assert.equal(r.code, 0, r.out);
      for (const head of ['flash: regions', 'flash: kernel subsystems', 'flash: object files', 'flash: symbols', 'flash: root filesystem files', 'RAM: regions', 'RAM: kernel subsystems', 'RAM: symbols']) {
        assert.ok(r.stdout.includes(`\n${head}`), `${head} in\n${r.stdout}`);
      }
    });

    it('--diff minimal router: the levels add up to the totals; --max-growth fails on growth and passes on none', async () => {
      const a = await sizeOf(minimal.variantDir);
      const saved = join(tmp, 'minimal.json');
      writeFileSync(saved, JSON.stringify(a));
      const r = await xip(['size', '--json', '--diff', saved, router.variantDir]);
      assert.equal(r.code, 0, r.out);
      const d = JSON.parse(r.stdout) as SizeDiff;
      const b = await sizeOf(router.variantDir);
      const used = (x: SizeReport) => (x.flash!.children ?? []).filter((c) => c.kind !== 'free').reduce((t, c) => t + c.bytes, 0);
      assert.equal(d.flashUsed?.delta, used(b) - used(a));
      assert.equal(d.ram.delta, b.ram.bytes - a.ram.bytes);
      assert.equal(d.flashSubsystems.reduce((t, x) => t + x.delta, 0), d.flashUsed!.delta, 'subsystem deltas add up to the flash in use');
      assert.equal(d.ramRegions.reduce((t, x) => t + x.delta, 0), d.ram.delta, 'section deltas add up to the RAM');
      assert.ok(d.flashSymbols.added > 1000, `${d.flashSymbols.added} symbols added: the router has networking`);
      assert.ok(d.flashSubsystems.some((s) => s.name === 'net/ipv4' && s.a === 0 && s.delta > 100_000));
      const grow = await xip(['size', '--diff', minimal.variantDir, router.variantDir, '--max-growth', '1000']);
      assert.equal(grow.code, 1, grow.out);
      assert.match(grow.stderr, /flash in use grew by \d+ bytes.*more than --max-growth 1000/);
      assert.match(grow.stdout, /flash symbols: add\/remove: \d+\/\d+ grow\/shrink: \d+\/\d+ up\/down: \+[\d,]+\/-[\d,]+/);
      const same = await xip(['size', '--diff', saved, minimal.variantDir, '--max-growth', '0']);
      assert.equal(same.code, 0, same.out);
      assert.match(same.stdout, /flash symbols: add\/remove: 0\/0 grow\/shrink: 0\/0 up\/down: 0\/0 \(0\)/);
    });

    it('--diff stock xip: a stock kernel has no flash; its text is RAM the XIP kernel gives back', async () => {
      const r = await xip(['size', '--json', '--diff', stock.variantDir, minimal.variantDir]);
      assert.equal(r.code, 0, r.out);
      const d = JSON.parse(r.stdout) as SizeDiff;
      assert.equal(d.flashUsed, undefined);
      const text = d.ramRegions.find((x) => x.name === '.text');
      assert.ok(text && text.a > 1_000_000 && text.b === 0, JSON.stringify(text));
      assert.ok(d.ram.delta < -1_000_000, `RAM ${d.ram.delta}`);
    });

    it('refuses bad input with one line and exit 2', async () => {
      // An XIP build whose image is not assembled: its flash cannot be told from its RAM.
      const noImage = join(tmp, 'no-image');
      mkdirSync(noImage);
      copyFileSync(join(minimal.variantDir, 'build-info.json'), join(noImage, 'build-info.json'));
      symlinkSync(minimal.kbuildDir, join(noImage, 'kbuild'));
      const stockJson = join(tmp, 'stock.json');
      writeFileSync(stockJson, (await xip(['size', '--json', stock.variantDir])).stdout);
      for (const [args, msg] of [
        [['size', '--diff', join(tmp, 'nope'), minimal.variantDir], /no such build directory or size file/],
        [['size', '--diff', minimal.variantDir], /--diff takes two builds, old then new \(got 1\)/],
        [['size', '--max-growth', '10'], /--max-growth needs --diff A B/],
        [['size', '--diff', minimal.variantDir, minimal.variantDir, '--max-growth', '-1'], /--max-growth '-1'/],
        [['size', noImage], /no image report.*assemble the image first \(xip image\)/],
        [['--build-dir', join(tmp, 'empty'), 'size'], /not built yet; build it with the same options first/],
        [['--build-dir', join(tmp, 'empty'), 'report', '--html', join(tmp, 'never.html')], /not built yet/],
        [['size', '--diff', minimal.variantDir, stockJson, '--max-growth', '0'], /has no flash image and the other has/],
      ] as const) {
        const r = await xip([...args]);
        assert.equal(r.code, 2, r.out);
        assert.match(r.stderr, msg);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
      assert.ok(!existsSync(join(tmp, 'never.html')), 'a refused report leaves no file');
    });

    it('report --html: one self-contained file that chromium renders (treemaps, zoom, no errors, no requests)', async () => {
      const html = join(tmp, 'report.html');
      const png = join(tmp, 'report.png');
      const r = await xip(['--config', router.config, 'report', '--html', html, '--screenshot', png]);
      assert.equal(r.code, 0, r.out);
      const text = readFileSync(html, 'utf8');
      assert.doesNotMatch(text, /<script[^>]+src=|<link[^>]+href=|@import|url\(\s*['"]?https?:/i, 'no external assets');
      const page = await inspectPage({
        htmlPath: html,
        waitFor: 'window.__xipReport && window.__xipReport.ready === true',
        evaluate: `(async () => {
          const count = (id) => document.querySelectorAll('[data-testid="' + id + '"] rect.node').length;
          const before = { flash: count('treemap-flash'), ram: count('treemap-ram') };
          const target = [...document.querySelectorAll('[data-testid="treemap-flash"] rect.node')].find((e) => e.getAttribute('data-path').endsWith('kernel text'));
          target.dispatchEvent(new MouseEvent('click', { bubbles: true }));
          await new Promise((r) => setTimeout(r, 200));
          const paths = [...document.querySelectorAll('[data-testid="treemap-flash"] rect.node')].map((e) => e.getAttribute('data-path'));
          return { before, after: paths.length, zoomed: paths.filter((p) => p.includes('kernel text')).length,
            partitions: document.querySelectorAll('[data-testid="partition-bar"] *').length,
            memoryRows: document.querySelectorAll('[data-testid="memory-table"] tr').length };
        })()`,
        screenshot: true,
      });
      assert.deepEqual(page.errors, []);
      assert.deepEqual(page.externalRequests, []);
      const v = page.value as { before: { flash: number; ram: number }; after: number; zoomed: number; partitions: number; memoryRows: number };
      assert.ok(v.before.flash > 20 && v.before.ram > 20, JSON.stringify(v));
      assert.ok(v.after > 20 && v.zoomed === v.after, `after zooming into kernel text every cell is inside it: ${JSON.stringify(v)}`);
      assert.ok(v.partitions >= 2, JSON.stringify(v));
      assert.ok(v.memoryRows >= 3, `the Memory: lines of bench/results-lwrt_qemu_malta.json: ${JSON.stringify(v)}`);
      const png8 = readFileSync(png).subarray(0, 8);
      assert.deepEqual([...png8], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'report --screenshot wrote a PNG');
    });
  });
});
