import { mergeEnv } from '../src/cli.ts';
import { TOOLCHAINS } from '../src/context.ts';
import { xipBootSuite } from './fixtures/xip-suite.ts';

// Every toolchain must produce a working XIP kernel: the ones this run is
// not using (of clang with GNU ld, gcc, and LLVM=1 with ld.lld) build,
// verify and boot from flash too (smallest and largest RAM size).
const current = mergeEnv({}).toolchain ?? 'clang';
for (const other of TOOLCHAINS.filter((t) => t !== current)) xipBootSuite(other, [8, 256], false);
