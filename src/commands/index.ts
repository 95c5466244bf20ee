import * as bench from './bench.ts';
import * as boot from './boot.ts';
import * as build from './build.ts';
import type { CommandModule } from './common.ts';
import * as doctor from './doctor.ts';
import * as freshCheck from './fresh-check.ts';
import * as flashmap from './flashmap.ts';
import * as image from './image.ts';
import * as measure from './measure.ts';
import * as measureRootfs from './measure-rootfs.ts';
import * as profile from './profile.ts';
import * as report from './report.ts';
import * as run from './run.ts';
import * as series from './series.ts';
import * as settings from './settings.ts';
import * as size from './size.ts';
import * as soak from './soak.ts';
import * as source from './source.ts';
import * as verify from './verify.ts';

/**
 * Every `xip` command, in the order of `xip --help`: one module each, with
 * its options (define) and its handler. A handler loads what it needs when
 * it runs, so that starting xip stays cheap.
 */
export const COMMANDS: readonly CommandModule[] = [doctor, source, build, flashmap, image, settings, verify, boot, run, measure, measureRootfs, profile, bench, size, report, soak, series, freshCheck];
