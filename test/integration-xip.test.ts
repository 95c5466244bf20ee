import { mergeEnv } from '../src/cli.ts';
import type { Toolchain } from '../src/context.ts';
import { xipBootSuite } from './fixtures/xip-suite.ts';

// The toolchain of this run (TOOLCHAIN=gcc make test): every RAM size the
// issue names, and the proof that the kernel executes in place.
xipBootSuite((mergeEnv({}).toolchain ?? 'clang') as Toolchain, [8, 16, 32, 256], true);
