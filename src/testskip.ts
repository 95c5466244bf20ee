import { badInput } from './errors.ts';

/**
 * Leaving parts of `make test` out, for a run that has less time than the
 * whole suite needs: CI's second fresh root (see .ci/run). What is left out
 * is reported skipped, with the variable that did it, never passed.
 */

/** The names a comma-separated list variable holds (`what`: board, suite); one line naming the first that is not allowed. */
export function envList(env: string, what: string, value: string | undefined, allowed: readonly string[], refuse: Record<string, string> = {}): string[] {
  const names = [...new Set((value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  const use = `use ${allowed.join(', ')} (comma-separated), or unset it`;
  for (const n of names) {
    if (refuse[n] !== undefined) throw badInput(`${env}: ${n} ${refuse[n]}: ${use}`);
    if (!allowed.includes(n)) throw badInput(`${env}: no ${what} '${n}': ${use}`);
  }
  return names;
}

/** Why a run leaves `name` out (the skip reason its tests report), or false when the list does not name it. */
export function skipReason(env: string, names: readonly string[], name: string): string | false {
  return names.includes(name) ? `${env}=${names.join(',')} leaves ${name} out of this run` : false;
}

/** The variable that leaves whole malta suites out of `make test`. */
export const SKIP_SUITES_ENV = 'XIP_TEST_SKIP_SUITES';

/**
 * The malta suites a run may leave out: the long ones that each build or
 * boot the router (the suite toolchain's router kernel, the root in flash,
 * the power cuts) or build a kernel config of their own (the series checks).
 * Every other test stays, and so do the other boards' suites
 * ($XIP_TEST_SKIP_BOARDS leaves those out).
 */
export const SUITES: Readonly<Record<string, string>> = {
  flashroot: 'test/integration-flashroot.test.ts: the router with its root in flash, its control and the execution profile',
  router: "test/integration-router.test.ts: the router kernel of the suite's toolchain with its initramfs",
  settings: 'test/integration-settings.test.ts: settings written to the flash, the MTD_XIP-off control and the power cuts',
  network: 'test/integration-network.test.ts: the router between network namespaces',
  size: 'test/integration-size.test.ts: xip size and the HTML report on the router builds',
  xipchecks: 'test/integration-xip-checks.test.ts: the series checks and their kernel config',
};

/** The suites $XIP_TEST_SKIP_SUITES names; one line naming a wrong one. */
export function skippedSuites(value = process.env[SKIP_SUITES_ENV]): string[] {
  return envList(SKIP_SUITES_ENV, 'suite', value, Object.keys(SUITES));
}

/** Why this suite is left out of this run (the skip reason its tests report), or false when it runs. */
export function suiteSkip(suite: string): string | false {
  if (SUITES[suite] === undefined) throw new Error(`suiteSkip: '${suite}' is not in SUITES`);
  return skipReason(SKIP_SUITES_ENV, skippedSuites(), suite);
}
