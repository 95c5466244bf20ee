import { mergeEnv } from '../src/cli.ts';
import { xipBootSuite } from './fixtures/xip-suite.ts';

// Both compilers must produce a working XIP kernel: the toolchain this run
// is not using builds, verifies and boots from flash too (smallest and
// largest RAM size).
xipBootSuite(mergeEnv({}).toolchain === 'gcc' ? 'clang' : 'gcc', [8, 256], false);
