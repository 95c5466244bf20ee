import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BoardSchema, qemuOf, type Partition } from '../src/boards/board.ts';
import { ar9331 } from '../src/boards/ar9331.ts';
import { checkFlashMap, formatFlashMap } from '../src/boards/flashmap.ts';
import { boardNames, getBoard } from '../src/boards/index.ts';
import { mt7628 } from '../src/boards/mt7628.ts';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { TPLINK, checkVendorKernel, jumpTarget, jumpTo, lzmaAlone, lzmaAloneInflate, lzmaAloneSize, vendorKernel } from '../src/image/vendor.ts';
import { parseUImageHeader } from '../src/image/uboot-formats.ts';

const bad = (re: RegExp) => (e: unknown) => e instanceof XipError && e.exitCode === 2 && re.test(e.message);

describe('real boards: data only', () => {
  it('are registered, parse, and default to the loader they ship with', () => {
    assert.ok(boardNames().includes('mt7628') && boardNames().includes('ar9331'));
    for (const b of [mt7628, ar9331]) BoardSchema.parse(b);
    assert.equal(getBoard('mt7628').loader, 'vendor');
    assert.equal(getBoard('ar9331').loader, 'vendor');
    assert.equal(getBoard('malta').loader, 'shim');
    // The kernel sits behind what the loader reads first: a uImage header, or TP-Link's header and the jump.
    assert.equal(getBoard('mt7628').xipPhys, 0x1c050040);
    assert.equal(getBoard('ar9331').xipPhys, 0x1f020400);
    assert.equal(makeContext({ board: 'mt7628' }).variantDir.endsWith('xip-clang'), true);
    assert.equal(makeContext({ board: 'mt7628' }).imagePath.endsWith('chip-check.bin'), true);
    assert.equal(makeContext({ board: 'mt7628' }).publishedImage.endsWith('out/mt7628-kernel-partition.bin'), true);
  });

  it('offer only their own loader, and QEMU is refused in one line', () => {
    assert.throws(() => getBoard('mt7628', 'shim'), bad(/^board mt7628 has no shim loader: use LOADER=vendor$/));
    assert.throws(() => getBoard('ar9331', 'uboot'), bad(/^board ar9331 has no uboot loader: use LOADER=vendor$/));
    assert.throws(() => getBoard('malta', 'vendor'), bad(/^board malta has no vendor loader: use LOADER=shim or LOADER=uboot or LOADER=uboot-stock$/));
    assert.throws(() => qemuOf(getBoard('ar9331')), bad(/^board ar9331 cannot be booted here: QEMU has no model of it/));
    // Debian ships no big-endian malta U-Boot binary: malta-be has the source-built one only.
    assert.throws(() => getBoard('malta-be', 'uboot-stock'), bad(/^board malta-be has no uboot-stock loader: use LOADER=shim or LOADER=uboot$/));
    assert.equal(getBoard('malta-be', 'uboot').xipPhys, 0x1e050040);
  });

  it('a calibration partition must be read-only; a map without U-Boot environment is fine for a vendor loader', () => {
    const parts: Partition[] = ar9331.flashMaps.vendor!.map((p) => ({ ...p }));
    checkFlashMap(ar9331, 'vendor', parts);
    parts[3] = { ...parts[3]!, readOnly: false };
    assert.throws(() => checkFlashMap(ar9331, 'vendor', parts), bad(/calibration partition 'art' must be read-only/));
  });

  it("the map tables name the board's loader and the calibration", () => {
    const t = formatFlashMap(getBoard('mt7628'));
    assert.match(t, /u-boot .*MediaTek SDK U-Boot 1\.1\.3 \(the board's, kept\)/);
    assert.match(t, /factory .* ro +radio calibration \(never written\)/);
    assert.match(formatFlashMap(getBoard('ar9331')), /kernel .*XIP kernel \(TP-Link header and LZMA jump, kernel at \+0x400\)/);
  });

  it("the README's tables of the real boards are the ones `xip flashmap --markdown` prints", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    for (const name of ['mt7628', 'ar9331']) {
      const table = formatFlashMap(getBoard(name), { markdown: true });
      assert.ok(readme.includes(table), `README lacks the ${name} map:\n${table}`);
    }
  });
});

describe('what the vendor loaders boot', () => {
  const kernel = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  const entry = 0x9f021234;

  it('the jump: lui/ori/jr/nop to the target, in either byte order', () => {
    for (const endian of ['little', 'big'] as const) {
      assert.equal(jumpTarget(jumpTo(entry, endian), endian), entry);
      assert.equal(jumpTarget(jumpTo(0x9c1d6f30, endian), endian), 0x9c1d6f30);
    }
    assert.deepEqual([...jumpTo(0x9f021234, 'big').subarray(0, 8)], [0x3c, 0x19, 0x9f, 0x02, 0x37, 0x39, 0x12, 0x34]);
    assert.equal(jumpTarget(new Uint8Array(16), 'big'), null);
  });

  it('an LZMA-alone stream carrying its size, which xz inflates back', () => {
    const code = jumpTo(entry, 'big');
    const s = lzmaAlone(code);
    const v = new DataView(s.buffer, s.byteOffset);
    assert.equal(s[0], 0x5d); // lc=3 lp=0 pb=2, what LZMA SDK 4.x decoders take
    assert.equal(v.getUint32(5, true), 16);
    assert.equal(v.getUint32(9, true), 0);
    assert.equal(lzmaAloneSize(s), 16);
    assert.deepEqual([...lzmaAloneInflate(s)], [...code]);
  });

  it('the jump is padded to 64 KiB and still compresses to a few dozen bytes; a stream without its size is refused', () => {
    const b = getBoard('ar9331');
    const vk = vendorKernel(b, kernel, entry, 'XIP test');
    const v = new DataView(vk.bytes.buffer);
    const stream = vk.bytes.subarray(0x200, 0x200 + v.getUint32(TPLINK.kernelLength));
    assert.equal(lzmaAloneSize(stream), TPLINK.jumpPadBytes);
    assert.ok(stream.length < 200, `${stream.length} bytes`);
    const unsized = new Uint8Array(vk.bytes);
    unsized.fill(0xff, 0x200 + 5, 0x200 + 13);
    assert.match(checkVendorKernel(b, unsized, entry).problems.join(), /gives no uncompressed size/);
    assert.match(checkVendorKernel(b, vk.bytes, null).problems.join(), /no kernel_entry symbol/);
  });

  it("MT7628: a uImage whose load address is bootm's, so the SDK U-Boot runs it in place", () => {
    const b = getBoard('mt7628');
    const vk = vendorKernel(b, kernel, 0x9c051000, 'XIP test');
    const hd = parseUImageHeader(vk.bytes, vk.bytes.subarray(64));
    assert.equal(hd.load, 0xbc050000);
    assert.equal(hd.entry, 0x9c051000);
    assert.deepEqual(checkVendorKernel(b, vk.bytes, 0x9c051000).problems, []);
    assert.match(checkVendorKernel(b, vk.bytes, 0x9c051004).problems.join(), /entry point is 0x9c051000, but kernel_entry is 0x9c051004/);
  });

  it("AR9331: TP-Link's v1 header, the compressed jump at 0x200, the kernel at 0x400", () => {
    const b = getBoard('ar9331');
    const vk = vendorKernel(b, kernel, entry, 'XIP test');
    const v = new DataView(vk.bytes.buffer);
    assert.equal(v.getUint32(0), TPLINK.version);
    assert.equal(v.getUint32(TPLINK.kernelLoad), 0xa0002000);
    assert.equal(v.getUint32(TPLINK.kernelEntry), 0xa0002000);
    assert.equal(v.getUint32(TPLINK.kernelOffset), 0x200);
    assert.equal(v.getUint32(TPLINK.fwLength), vk.bytes.length);
    assert.deepEqual([...vk.bytes.subarray(0x400)], [...kernel]);
    assert.deepEqual(checkVendorKernel(b, vk.bytes, entry).problems, []);
    // A header that points the jump elsewhere, or a damaged stream, fails.
    assert.match(checkVendorKernel(b, vk.bytes, entry + 4).problems.join(), /goes to 0x9f021234, but kernel_entry is 0x9f021238/);
    const broken = new Uint8Array(vk.bytes);
    broken[0x200 + 20] = broken[0x200 + 20]! ^ 0xff;
    assert.notDeepEqual(checkVendorKernel(b, broken, entry).problems, []);
  });
});
