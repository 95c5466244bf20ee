import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getBoard } from '../src/boards/index.ts';
import { staticProgramProblem } from '../src/userspace/program.ts';
import { buildElf, type SynthElf } from './fixtures/elf/synth.ts';

/**
 * The one check that a target program (the boot-test init, the stress
 * programs, the router's busybox) is a static program the kernel's ELF
 * loader takes for the board; synthetic ELF files.
 */
const malta = getBoard('malta');
const text = { name: '.text', flags: 6, addr: 0x400000, data: new Uint8Array(16) };
const interp = { name: '.interp', addr: 0x400100, data: new TextEncoder().encode('/lib/ld.so.1\0') };

function program(o: Partial<SynthElf> = {}): Uint8Array {
  return buildElf({ type: 2, entry: 0x400000, sections: [text], segments: [{ type: 1, flags: 5, sections: ['.text'] }], ...o }).bytes;
}

describe('staticProgramProblem', () => {
  it('takes a static little-endian MIPS executable', () => {
    assert.equal(staticProgramProblem(program(), malta), undefined);
  });

  it('names what is wrong: interpreter, byte order, type, no PT_LOAD, not ELF', () => {
    const dynamic = program({ sections: [text, interp], segments: [{ type: 3, flags: 4, sections: ['.interp'] }, { type: 1, flags: 5, sections: ['.text'] }] });
    assert.match(staticProgramProblem(dynamic, malta)!, /asks for an interpreter \(PT_INTERP\): it must be static/);
    assert.match(staticProgramProblem(program({ endian: 'big' }), malta)!, /is big-endian, the board is little-endian/);
    assert.match(staticProgramProblem(program({ type: 3 }), malta)!, /not a MIPS executable \(ET_EXEC, EM_MIPS\)/);
    assert.match(staticProgramProblem(program({ segments: [{ type: 4, flags: 4, sections: ['.text'] }] }), malta)!, /no PT_LOAD segment/);
    assert.match(staticProgramProblem(new TextEncoder().encode('#!/bin/sh\necho hi\n'), malta)!, /not a well-formed MIPS ELF32 file/);
  });
});
