import { mergeEnv } from '../src/cli.ts';
import type { Toolchain } from '../src/context.ts';
import { routerSuite } from './fixtures/router-suite.ts';
import { skippable } from './fixtures/skip.ts';

skippable('router', () => {
  routerSuite((mergeEnv({}).toolchain ?? 'clang') as Toolchain);
});
