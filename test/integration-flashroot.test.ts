import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { userspacePaths } from '../src/context.ts';
import { profilePath, readProfile } from '../src/userspace/xipprofile.ts';
import { xipLogged } from './fixtures/cli.ts';
import { bootAndMap, contextOf, flashRootCli, flashRootSuite, toolchain } from './fixtures/flashroot-suite.ts';
import { skippable } from './fixtures/skip.ts';

skippable('flashroot', () => {
  // The router with its root in flash on malta, with the all-compressed control (test/fixtures/flashroot-suite.ts).
  flashRootSuite();

  const cli = flashRootCli();

  describe(`execution profile (${toolchain})`, { timeout: 30 * 60 * 1000 }, () => {
    it('xip profile records the pages the router used on router-cramfs; router-profiled keeps the code up to the last used page in place, and boots', async () => {
      let r = await xipLogged(['--toolchain', toolchain, 'profile'], 20 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      const ctx = contextOf('router-profiled');
      const profile = readProfile(profilePath(ctx));
      const bb = profile.files['/bin/busybox'];
      assert.ok(bb && bb.pages.length > 16, `busybox pages used: ${bb?.pages.length}`);
      r = await cli('router-profiled', ['build'], 20 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      r = await cli('router-profiled', ['image'], 5 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      const files = JSON.parse(readFileSync(join(userspacePaths(ctx).dir, 'rootfs-files.json'), 'utf8')) as Array<{ path: string; xipPages: number[] }>;
      const text = JSON.parse(readFileSync(join(userspacePaths(contextOf('router-xip')).dir, 'rootfs-files.json'), 'utf8')) as Array<{ path: string; xipPages: number[] }>;
      const inPlace = files.find((f) => f.path === '/bin/busybox')!.xipPages;
      const allText = text.find((f) => f.path === '/bin/busybox')!.xipPages;
      const last = Math.max(...allText.filter((p) => bb.pages.includes(p)));
      assert.deepEqual(inPlace, allText.filter((p) => p <= last), 'in place: the code up to the last page the profile saw used');
      const { userPcs } = await bootAndMap('router-profiled', 16);
      assert.ok(userPcs.length >= 1, 'the guest ran busybox code');
    });
  });
});
