import type { Command } from 'commander';
import type { GlobalOptions } from './common.ts';

/** `xip doctor`: the host tools, found and needed; --install adds what is missing. */
export interface DoctorCommandOptions {
  install?: boolean;
  json?: boolean;
  freshCheck?: boolean;
  browser?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('doctor')
    .description('check host tools (version found and needed); --install adds missing')
    .option('--install', 'apt-get install the missing packages (as root, or through sudo)')
    .option('--json', 'machine-readable output')
    .option('--fresh-check', 'also what make fresh-check needs on the host (debootstrap, git)')
    .option('--browser', 'also what make test needs to render the HTML size report (chromium, fonts)');
}

export async function handler(g: GlobalOptions, o: DoctorCommandOptions): Promise<number> {
  const { doctor } = await import('../doctor.ts');
  return doctor({
    install: o.install,
    json: o.json,
    freshCheck: o.freshCheck,
    browser: o.browser,
    needDebianSource: !g.kernelSrc && !g.kernelTarball,
  });
}
