import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hex, renderTable } from '../src/text.ts';

describe('hex', () => {
  it('prints unsigned 32-bit numbers, padded when asked', () => {
    assert.equal(hex(0x1fc01000), '0x1fc01000');
    assert.equal(hex(-1), '0xffffffff');
    assert.equal(hex(0x220), '0x220');
    assert.equal(hex(0x220, 8), '0x00000220');
  });
});

describe('renderTable', () => {
  it('plain: columns as wide as their widest cell, two spaces apart, no trailing blanks', () => {
    assert.equal(renderTable(['tool', 'found', 'why'], [['clang', '14.0.6', ''], ['x', '-', 'a reason']]), 'tool   found   why\nclang  14.0.6\nx      -       a reason');
  });

  it('plain: indent, alignment and least widths', () => {
    const t = renderTable(['a', 'n'], [['x', 5]], { indent: '  ', align: ['l', 'r'], minWidths: [3, 4] });
    assert.equal(t, '  a       n\n  x       5');
  });

  it('markdown: first column left, the rest right, separator with colons', () => {
    assert.equal(renderTable(['a', 'b'], [['x', 1], ['yy', 22]], { markdown: true }), '| a   |   b |\n| --- | --: |\n| x   |   1 |\n| yy  |  22 |');
    assert.equal(renderTable(['a', 'b'], [['x', 'y']], { markdown: true, align: ['l', 'l'] }), '| a   | b   |\n| --- | --- |\n| x   | y   |');
  });
});
