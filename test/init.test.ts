import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { capture } from '../src/proc.ts';
import { buildInit, INIT_SIZE_LIMIT, initSources } from '../src/userspace/init.ts';

const tmp = mkdtempSync(join(tmpdir(), 'xip-init-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** ELF header facts read with llvm-readelf, an independent reader. */
function readelf(path: string): { header: string; phdrs: string } {
  return {
    header: capture('llvm-readelf', ['-h', path]),
    phdrs: capture('llvm-readelf', ['-l', '-W', path]),
  };
}

describe('buildInit', () => {
  for (const toolchain of ['clang', 'gcc'] as const) {
    it(`builds a static mipsel PID 1 under 1 KiB with ${toolchain}`, async () => {
      const ctx = makeContext({ toolchain, buildDir: join(tmp, 'build') });
      const out = join(tmp, toolchain, 'init');
      await buildInit(ctx, out);
      const size = statSync(out).size;
      process.stderr.write(`# init (${toolchain}): ${size} bytes stripped\n`);
      assert.ok(size < INIT_SIZE_LIMIT, `${size} bytes`);
      assert.deepEqual(readdirSync(join(tmp, toolchain)), ['init'], 'no temp files left');

      const { header, phdrs } = readelf(out);
      assert.match(header, /Class:\s+ELF32/);
      assert.match(header, /Data:\s+2's complement, little endian/);
      assert.match(header, /Type:\s+EXEC/);
      assert.match(header, /Machine:\s+MIPS R3000/);
      assert.match(header, /Flags:.*o32/);
      assert.match(header, /Flags:.*mips32r2/);
      assert.doesNotMatch(phdrs, /INTERP/);
      assert.doesNotMatch(phdrs, /DYNAMIC/);
      // The kernel's loader rejects a PT_MIPS_ABIFLAGS whose data a strip removed: there must be none.
      assert.doesNotMatch(phdrs, /ABIFLAGS|REGINFO/);
      const loads = phdrs.split('\n').filter((l) => /^\s*LOAD\s/.test(l));
      assert.equal(loads.length, 1);
      const f = loads[0]!.trim().split(/\s+/);
      // LOAD offset vaddr paddr filesz memsz flags align: the whole file is loaded and executable.
      assert.ok(Number.parseInt(f[4]!, 16) > 0 && Number.parseInt(f[4]!, 16) <= size);
      assert.match(loads[0]!, /R.E/);
      const entry = Number.parseInt(/Entry point address:\s+0x([0-9a-f]+)/.exec(header)![1]!, 16);
      const vaddr = Number.parseInt(f[2]!, 16);
      assert.ok(entry >= vaddr && entry < vaddr + Number.parseInt(f[5]!, 16), 'entry inside the PT_LOAD');

      // It makes the system calls it claims: write, getpid, sync, reboot (o32 numbers 4004, 4020, 4036, 4088).
      const dis = capture('llvm-objdump', ['-d', '--triple=mipsel-linux-gnu', '-D', out]);
      assert.ok((dis.match(/\tsyscall/g) ?? []).length >= 1);
      const bytes = readFileSync(out);
      for (const s of ['XIP-USERSPACE-OK\n', 'XIP-POWEROFF: requesting power off\n', '/dev/console']) {
        assert.ok(bytes.includes(Buffer.from(s)), `contains ${JSON.stringify(s)}`);
      }
    });
  }

  it('refuses an init of 1 KiB or more, says the size and the limit, and writes nothing', async () => {
    // A copy of the repository's userspace/ with a big string added.
    const repo = join(tmp, 'bigrepo');
    mkdirSync(join(repo, 'userspace'), { recursive: true });
    for (const s of initSources(REPO_ROOT)) cpSync(s, join(repo, 'userspace', s.split('/').pop()!));
    const src = join(repo, 'userspace', 'init.c');
    const padded = readFileSync(src, 'utf8').replace(
      'fd = put(fd, ", argv[0] ");',
      `fd = put(fd, "${'x'.repeat(600)}");\n\tfd = put(fd, ", argv[0] ");`,
    );
    assert.notEqual(padded, readFileSync(src, 'utf8'), 'padding applied');
    writeFileSync(src, padded);
    const ctx = { ...makeContext({ toolchain: 'gcc', buildDir: join(tmp, 'build') }), repo };
    const out = join(tmp, 'big', 'init');
    await assert.rejects(buildInit(ctx, out), (err: unknown) => {
      assert.ok(err instanceof XipError);
      assert.match(err.message, /init \(gcc\) is \d{4} bytes stripped; the limit is under 1024 bytes/);
      return true;
    });
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(join(tmp, 'big')), [], 'no temp files left');
  });

  it('reports a compile error as an XipError naming the toolchain', async () => {
    const repo = join(tmp, 'brokenrepo');
    mkdirSync(join(repo, 'userspace'), { recursive: true });
    for (const s of initSources(REPO_ROOT)) cpSync(s, join(repo, 'userspace', s.split('/').pop()!));
    writeFileSync(join(repo, 'userspace', 'init.c'), 'this is not C\n');
    const ctx = { ...makeContext({ toolchain: 'clang', buildDir: join(tmp, 'build') }), repo };
    await assert.rejects(buildInit(ctx, join(tmp, 'broken', 'init')), (err: unknown) => {
      assert.ok(err instanceof XipError);
      assert.match(err.message, /init build \(clang\) failed/);
      return true;
    });
    assert.equal(existsSync(join(tmp, 'broken', 'init')), false);
  });
});
