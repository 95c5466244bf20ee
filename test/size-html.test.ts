import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { Script } from 'node:vm';
import { renderSizeHtml, type HtmlReportInput, type MemoryRow } from '../src/size/html.ts';
import type { SizeKind, SizeNode, SizeReport } from '../src/size/types.ts';

/** The HTML size report from a synthetic SizeReport: one page, nothing fetched, data intact, names escaped. */

/** A name that would end the JSON block, open markup and a comment if anything wrote it raw. */
const EVIL = '</script><b>evil</b><!--';

function leaf(name: string, kind: SizeKind, bytes: number, extra: Partial<SizeNode> = {}): SizeNode {
  return { name, kind, bytes, ...extra };
}

/** An inner node whose bytes are its children's sum, as the SizeReport promises. */
function inner(name: string, kind: SizeKind, children: SizeNode[], extra: Partial<SizeNode> = {}): SizeNode {
  return { name, kind, bytes: children.reduce((s, c) => s + c.bytes, 0), children, ...extra };
}

function object(name: string, symbols: [string, number][]): SizeNode {
  return inner(
    name,
    'object',
    symbols.map(([n, b]) => leaf(n, 'symbol', b)),
  );
}

function sizeReport(): SizeReport {
  const kernelText = inner('kernel text', 'region', [
    inner('mm', 'subsystem', [
      object('mm/page_alloc.o', [
        ['__alloc_pages', 4096],
        ['free_unref_page', 1200],
        [EVIL, 64],
      ]),
      object('mm/slub.o', [
        ['kmem_cache_alloc', 900],
        ['__slab_free', 700],
      ]),
    ]),
    inner('drivers/mtd', 'subsystem', [object('drivers/mtd/mtdcore.o', [['mtd_read', 300], ['add_mtd_device', 1800]]), leaf('(no symbol)', 'other', 40)]),
    leaf('(padding)', 'other', 12),
  ]);
  const rootfs = inner(
    'rootfs',
    'region',
    [leaf('/bin/busybox', 'file', 300_000, { estimated: true, note: 'XIP 393216 B, compressed 12288 B' }), leaf('/etc/inittab', 'file', 120, { estimated: true })],
  );
  const used = 4096 + kernelText.bytes + rootfs.bytes;
  const flash = inner('flash', 'total', [leaf('boot shim', 'other', 4096), kernelText, rootfs, leaf('free', 'free', 4 * 1024 * 1024 - used)]);
  const ram = inner('RAM', 'total', [
    inner('.data', 'region', [inner('kernel', 'subsystem', [object('kernel/fork.o', [['init_task', 3000]])])]),
    inner('.bss', 'region', [inner('mm', 'subsystem', [object('mm/page_alloc.o', [['contig_page_data', 1500]])])]),
  ]);
  return {
    schema: 1,
    build: { dir: 'build/malta/xip_qemu_malta_defconfig/xip-clang', board: 'malta', config: 'xip_qemu_malta_defconfig', variant: 'xip', toolchain: 'clang', kernelVersion: '6.12.117' },
    flash,
    ram,
  };
}

function mem(available: number, reserved: number): MemoryRow {
  return { availableKiB: available, totalKiB: 8192, kernelCodeKiB: 1745, rwdataKiB: 496, rodataKiB: 148, initKiB: 158, bssKiB: 172, reservedKiB: reserved };
}

function input(over: Partial<HtmlReportInput> = {}): HtmlReportInput {
  return {
    title: `Size of malta ${EVIL}`,
    generated: '2026-12-04T10:00:00.000Z',
    size: sizeReport(),
    partitions: [
      { name: 'shim', offset: 0, size: 0x10000, content: 'boot shim', readOnly: true, usedBytes: 4096 },
      { name: 'kernel', offset: 0x10000, size: 0x2f0000, content: 'XIP kernel', readOnly: true, usedBytes: 0x200000 },
      { name: EVIL, offset: 0x300000, size: 0x100000, content: `rootfs ${EVIL}`, readOnly: false },
      { name: 'firmware', offset: 0x10000, size: 0x3f0000, content: 'kernel + rootfs', readOnly: false },
    ],
    memory: [
      { memMiB: 8, xip: mem(6080, 1872), stock: mem(4012, 3940) },
      { memMiB: 256, xip: { ...mem(257832, 4040), totalKiB: 262144 }, stock: { ...mem(255764, 6108), totalKiB: 262144 } },
    ],
    bench: [
      { label: 'boot to PID 1 (guest instructions)', value: '36,897,068' },
      { label: `label ${EVIL}`, value: `value ${EVIL}` },
    ],
    ...over,
  };
}

/** The text of the JSON block: with every '<' escaped, its first "</script>" is its own end. */
function dataBlock(html: string): string {
  const m = /<script type="application\/json" id="xip-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'no #xip-data block');
  return m[1]!;
}

/** The page without the JSON block, i.e. what the server wrote as markup. */
function withoutData(html: string): string {
  return html.replace(dataBlock(html), '');
}

function d3Min(): string {
  const entry = createRequire(import.meta.url).resolve('d3-hierarchy');
  return readFileSync(join(dirname(entry), 'd3-hierarchy.min.js'), 'utf8');
}

/** The text of every inline classic script, in order. */
function scripts(html: string): string[] {
  return [...html.matchAll(/<script>\n([\s\S]*?)\n<\/script>/g)].map((m) => m[1]!);
}

describe('renderSizeHtml', () => {
  const html = renderSizeHtml(input());

  it('is one document', () => {
    assert.ok(html.startsWith('<!DOCTYPE html>\n<html lang="en">'));
    assert.ok(html.trimEnd().endsWith('</html>'));
    assert.equal(html.match(/<html[\s>]/g)?.length, 1);
    assert.equal(html.match(/<\/html>/g)?.length, 1);
    assert.equal(html.match(/<body[\s>]/g)?.length, 1);
  });

  it('needs nothing from outside: no URL, no external script, stylesheet or font', () => {
    assert.doesNotMatch(html, /https?:\/\//i);
    assert.doesNotMatch(html, /<script[^>]*\ssrc=/i);
    assert.doesNotMatch(html, /<link[\s>]/i);
    assert.doesNotMatch(html, /@import|@font-face|url\(/i);
    assert.equal(html.match(/<script[\s>]/g)?.length, 3, 'the data, d3-hierarchy and the client');
    assert.equal(html.match(/<\/script>/g)?.length, 3, 'no name ends a script early');
  });

  it('inlines d3-hierarchy as shipped, its license line kept', () => {
    const src = d3Min();
    const nl = src.indexOf('\n');
    const [d3, client] = scripts(html);
    assert.equal(d3, src.slice(0, nl).replace('https://', '') + src.slice(nl));
    assert.match(d3!, /^\/\/ d3js\.org\/d3-hierarchy\/ v3\.1\.3 Copyright .* Mike Bostock/);
    assert.match(d3!, /treemapSquarify/);
    assert.match(client!, /__xipReport/);
    assert.match(client!, /^\s*'use strict';/m);
  });

  it('inlines scripts a browser can parse', () => {
    for (const s of scripts(html)) assert.doesNotThrow(() => new Script(s));
  });

  it('embeds the input as JSON that parses back to it, even with "</script>" in a name', () => {
    const block = dataBlock(html);
    assert.ok(!block.includes('<'), 'every < is escaped');
    assert.deepEqual(JSON.parse(block), input());
    const stock = sizeReport();
    delete stock.flash;
    const bare = renderSizeHtml({ title: 't', generated: '2026-12-04', size: stock });
    assert.deepEqual(JSON.parse(dataBlock(bare)), { title: 't', generated: '2026-12-04', size: stock });
  });

  it('escapes names in the server-written markup', () => {
    const markup = withoutData(html);
    assert.ok(!markup.includes('<b>evil'), 'a name is never markup');
    assert.ok(!markup.includes('<!--'), 'a name never opens a comment');
    const escaped = '&lt;/script&gt;&lt;b&gt;evil&lt;/b&gt;&lt;!--';
    assert.ok(markup.includes(`<title>Size of malta ${escaped}</title>`));
    assert.ok(markup.includes(`<h1>Size of malta ${escaped}</h1>`));
    assert.ok(markup.includes(`<b>${escaped}</b> 1 MiB`), 'partition bar label');
    assert.ok(markup.includes(`data-name="${escaped}"`), 'partition bar attribute');
    assert.ok(markup.includes(`<td>rootfs ${escaped}</td>`), 'partition legend');
    assert.ok(markup.includes(`<td>label ${escaped}</td><td class="num">value ${escaped}</td>`), 'bench table');
  });

  it('has a container for each treemap, the partition bar and the memory table', () => {
    for (const id of ['treemap-flash', 'treemap-ram', 'partition-bar', 'memory-table', 'bench-table']) assert.ok(html.includes(`data-testid="${id}"`), id);
    assert.match(html, /<div class="treemap" data-tree="flash"[^>]*>[\s\S]*?<svg class="map"/);
    assert.match(html, /<div class="treemap" data-tree="ram"[^>]*>[\s\S]*?<svg class="map"/);
  });

  it('leaves out what the input lacks', () => {
    const s = sizeReport();
    delete s.flash;
    const out = renderSizeHtml({ title: 'stock', generated: '2026-12-04', size: s });
    assert.ok(out.includes('data-testid="treemap-ram"'));
    for (const id of ['treemap-flash', 'partition-bar', 'memory-table', 'bench-table']) assert.ok(!out.includes(`data-testid="${id}"`), id);
    assert.ok(!out.includes('data-tree="flash"'));
  });

  it('draws the partitions to scale, overlapping ones on a lane of their own', () => {
    assert.match(html, /class="pseg" data-name="shim"[^>]*style="left:0\.0000%;width:1\.5625%;top:0px;/);
    assert.match(html, /class="pseg" data-name="kernel"[^>]*style="left:1\.5625%;width:73\.4375%;top:0px;/);
    assert.match(html, /class="pseg" data-name="firmware"[^>]*top:38px;/, 'firmware spans kernel and rootfs: second lane');
    assert.match(html, /<div class="used" style="width:6\.250%;/, 'shim: 4 KiB of 64 KiB used');
    assert.match(html, /<td class="num mono">0x300000<\/td><td class="num mono">0x400000<\/td><td class="num">1 MiB<\/td>/);
  });

  it('sets XIP against stock in the memory table', () => {
    assert.match(html, /<tr><td>available<\/td><td class="num">6,080<\/td><td class="num">4,012<\/td><td class="num good">\+2,068<\/td>/);
    assert.match(html, /<tr><td>reserved<\/td><td class="num">1,872<\/td><td class="num">3,940<\/td><td class="num good">-2,068<\/td>/);
    assert.match(html, /<th colspan="3" class="num">256 MiB RAM<\/th>/);
    assert.ok(html.includes('Memory: 6080K/8192K available (1745K kernel code, 496K rwdata, 148K rodata, 158K init, 172K bss, 1872K reserved)'));
  });

  it('stays linear for a kernel-sized tree', () => {
    const objects: SizeNode[] = [];
    for (let o = 0; o < 400; o++) {
      objects.push(object(`drivers/x/o${o}.o`, Array.from({ length: 50 }, (_, i): [string, number] => [`sym_${o}_${i}`, 16 + ((o * 31 + i * 7) % 900)])));
    }
    const big = inner('RAM', 'total', [inner('.text', 'region', [inner('drivers/x', 'subsystem', objects)])]);
    const t0 = performance.now();
    const out = renderSizeHtml({ title: 'big', generated: '2026-12-04', size: { ...sizeReport(), ram: big } });
    assert.ok(performance.now() - t0 < 2000);
    assert.deepEqual((JSON.parse(dataBlock(out)) as HtmlReportInput).size.ram, big);
  });
});
