import { mergeEnv } from '../src/cli.ts';
import type { Toolchain } from '../src/context.ts';
import { stressSuite } from './fixtures/stress-suite.ts';

stressSuite((mergeEnv({}).toolchain ?? 'clang') as Toolchain);
