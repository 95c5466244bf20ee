import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { kernelOutputs, kernelTargets, makeVars, progressLine } from '../src/kernel/kbuild.ts';
import {
  checkVariant,
  configValue,
  droppedSymbols,
  mergeConfig,
  missingFromConfig,
  parseConfig,
  parseConfigLine,
  renderConfigInput,
  variantFragment,
} from '../src/kernel/kconfig.ts';

const DEFCONFIG = 'CONFIG_MIPS_MALTA=y\nCONFIG_XIP_KERNEL=y\nCONFIG_XIP_PHYS_ADDR=0x1fc01000\n# CONFIG_SMP is not set\n';

describe('.config input', () => {
  it('xip: defconfig + CONFIG_XIP_KERNEL=y + the initramfs list', () => {
    const text = renderConfigInput(DEFCONFIG, 'xip', '/b/userspace/initramfs.list');
    const m = parseConfig(text);
    assert.ok(text.startsWith(DEFCONFIG));
    assert.equal(m.get('XIP_KERNEL'), 'y');
    assert.equal(m.get('XIP_PHYS_ADDR'), '0x1fc01000');
    assert.equal(m.get('INITRAMFS_SOURCE'), '"/b/userspace/initramfs.list"');
    assert.equal(m.get('BLK_DEV_INITRD'), 'y');
    assert.equal(m.get('SMP'), 'n');
  });

  it('stock: the same defconfig with CONFIG_XIP_KERNEL switched off after it', () => {
    const text = renderConfigInput(DEFCONFIG, 'stock', '/b/list');
    assert.ok(text.startsWith(DEFCONFIG));
    assert.equal(parseConfig(text).get('XIP_KERNEL'), 'n');
    assert.ok(text.indexOf('# CONFIG_XIP_KERNEL is not set') > text.indexOf('CONFIG_XIP_KERNEL=y'));
    assert.equal(variantFragment('stock'), '# CONFIG_XIP_KERNEL is not set\n');
  });

  it('quotes the initramfs path for Kconfig and copes with a defconfig without a final newline', () => {
    const text = renderConfigInput('CONFIG_A=y', 'stock', '/odd "dir"/list');
    assert.ok(text.startsWith('CONFIG_A=y\n'));
    assert.match(text, /^CONFIG_INITRAMFS_SOURCE="\/odd \\"dir\\"\/list"$/m);
  });

  it('the committed defconfig asks for the spec minimal malta config', () => {
    const m = parseConfig(readFileSync(join(REPO_ROOT, 'kernel/configs/xip_qemu_malta_defconfig'), 'utf8'));
    for (const [k, v] of [
      ['MIPS_MALTA', 'y'],
      ['CPU_MIPS32_R2', 'y'],
      ['CPU_LITTLE_ENDIAN', 'y'],
      ['CC_OPTIMIZE_FOR_SIZE', 'y'],
      ['SLUB_TINY', 'y'],
      ['POWER_RESET_PIIX4_POWEROFF', 'y'],
      ['SERIAL_8250_CONSOLE', 'y'],
      ['XIP_KERNEL', 'y'],
      ['XIP_PHYS_ADDR', '0x1e001000'],
      ['MIPS_MT_SMP', 'n'],
      ['MIPS_FP_SUPPORT', 'n'],
      ['BLOCK', 'n'],
      ['PROC_FS', 'n'],
      ['SYSFS', 'n'],
    ] as const) {
      assert.equal(m.get(k), v, `CONFIG_${k}`);
    }
    // Off by default: must not be switched on here.
    for (const k of ['SMP', 'NET', 'MODULES']) assert.notEqual(m.get(k), 'y', `CONFIG_${k}`);
    assert.equal(m.has('INITRAMFS_SOURCE'), false, 'the initramfs list is set by xip, per build');
  });
});

describe('the Kconfig reader', () => {
  it('reads set and unset lines, names without CONFIG_, and nothing else', () => {
    assert.deepEqual(parseConfigLine('CONFIG_XIP_PHYS_ADDR=0x1fc01000'), ['XIP_PHYS_ADDR', '0x1fc01000']);
    assert.deepEqual(parseConfigLine('CONFIG_CMDLINE="a=b c"'), ['CMDLINE', '"a=b c"']);
    assert.deepEqual(parseConfigLine('# CONFIG_SMP is not set'), ['SMP', 'n']);
    assert.deepEqual(parseConfigLine('  CONFIG_A=y  '), ['A', 'y'], 'surrounding blanks');
    for (const l of ['', '#', '# Automatically generated file; DO NOT EDIT.', '# CONFIG_A=y', 'A=y', 'CONFIG_=y']) assert.equal(parseConfigLine(l), undefined, l);
  });

  it('a later line wins; an absent symbol reads as n, with or without its prefix', () => {
    const m = parseConfig('CONFIG_A=y\n# CONFIG_A is not set\nCONFIG_B=m\n');
    assert.equal(configValue(m, 'A'), 'n');
    assert.equal(configValue(m, 'CONFIG_B'), 'm');
    assert.equal(configValue(m, 'CONFIG_NONE'), 'n');
  });
});

describe('Kconfig fragments (busybox .config)', () => {
  const base = '# CONFIG_HTTPD is not set\nCONFIG_LS=y\n# CONFIG_IP is not set\nCONFIG_UDHCPC_DEFAULT_SCRIPT="/old"\n';
  it('mergeConfig sets, unsets and appends symbols', () => {
    const frag = 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\nCONFIG_UDHCPC_DEFAULT_SCRIPT="/usr/share/udhcpc/default.script"\nCONFIG_NEW=y\n# a comment\n';
    const out = mergeConfig(base, frag);
    assert.match(out, /^CONFIG_HTTPD=y$/m);
    assert.match(out, /^# CONFIG_LS is not set$/m);
    assert.doesNotMatch(out, /^CONFIG_LS=y$/m);
    assert.match(out, /^CONFIG_UDHCPC_DEFAULT_SCRIPT="\/usr\/share\/udhcpc\/default.script"$/m);
    assert.match(out, /^CONFIG_NEW=y$/m);
    assert.match(out, /^# CONFIG_IP is not set$/m);
  });
  it('mergeConfig changes a symbol where it stands and ends with a newline', () => {
    assert.equal(mergeConfig('CONFIG_A=y\nCONFIG_B=y', '# CONFIG_A is not set\nCONFIG_C=m\n'), '# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_C=m\n');
    assert.equal(mergeConfig('', 'CONFIG_A=y'), 'CONFIG_A=y\n');
  });
  it('missingFromConfig lists what did not survive', () => {
    const final = 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\n';
    assert.deepEqual(missingFromConfig(final, 'CONFIG_HTTPD=y\n# CONFIG_LS is not set\n# CONFIG_GONE is not set\n'), []);
    assert.deepEqual(missingFromConfig(final, 'CONFIG_IP=y\nCONFIG_HTTPD=y\n# CONFIG_HTTPD is not set\n'), [
      'CONFIG_IP=y',
      '# CONFIG_HTTPD is not set',
    ]);
  });
});

describe('olddefconfig result checks', () => {
  it('fails the xip variant when CONFIG_XIP_KERNEL=y did not survive, in one line', () => {
    assert.throws(
      () => checkVariant(parseConfig('CONFIG_MIPS=y\n'), 'xip', '/t'),
      (e: unknown) => e instanceof XipError && /CONFIG_XIP_KERNEL=y did not survive/.test(e.message) && !e.message.includes('\n'),
    );
    checkVariant(parseConfig('CONFIG_XIP_KERNEL=y\n'), 'xip', '/t');
  });

  it('fails the stock variant when XIP is still on', () => {
    assert.throws(() => checkVariant(parseConfig('CONFIG_XIP_KERNEL=y\n'), 'stock', '/t'), /still set/);
    checkVariant(parseConfig('# CONFIG_XIP_KERNEL is not set\n'), 'stock', '/t');
  });

  it('lists requested symbols that olddefconfig dropped or changed', () => {
    const input = parseConfig('CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=0x10\n');
    const final = parseConfig('CONFIG_A=y\nCONFIG_D=0x20\n');
    assert.deepEqual(droppedSymbols(input, final), ['CONFIG_B=y (unknown or unmet dependency)', 'CONFIG_D=0x10 (got 0x20)']);
  });
});

describe('kbuild invocation', () => {
  it('builds out of tree with the toolchain of the context', () => {
    const clang = makeContext({ variant: 'stock', buildDir: '/b' });
    assert.deepEqual(makeVars(clang, '/src'), [
      '-C',
      '/src',
      `O=${clang.kbuildDir}`,
      'ARCH=mips',
      'CROSS_COMPILE=mipsel-linux-gnu-',
      'CC=clang',
    ]);
    const gcc = makeContext({ variant: 'stock', toolchain: 'gcc', buildDir: '/b' });
    assert.ok(!makeVars(gcc, '/src').includes('CC=clang'));
    assert.notEqual(gcc.kbuildDir, clang.kbuildDir);
  });

  it('stock builds vmlinuz too (the compressed baseline); xip only vmlinux', () => {
    const stock = makeContext({ variant: 'stock', buildDir: '/b' });
    assert.deepEqual(kernelTargets(stock), ['vmlinux', 'vmlinuz']);
    assert.ok(kernelOutputs(stock).includes(join(stock.kbuildDir, 'vmlinuz')));
    const xip = makeContext({ variant: 'xip', buildDir: '/b' });
    assert.deepEqual(kernelTargets(xip), ['vmlinux', 'xipImage']);
  });

  it('picks progress lines out of make output', () => {
    assert.equal(progressLine('  CC      kernel/fork.o'), 'CC kernel/fork.o');
    assert.equal(progressLine('  LD      vmlinux'), 'LD vmlinux');
    assert.equal(progressLine('make[1]: Entering directory'), undefined);
    assert.equal(progressLine('kernel/fork.c:12: warning: unused'), undefined);
  });
});
