// The anti-rollback rule stands on this ordering: it must match semver precedence.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareVersions, isVersion, parseVersion, VersionError } from '../../image/bundle/version.ts';

describe('bundle versions', () => {
  it('orders releases and pre-releases by semver precedence', () => {
    const ascending = ['0.1.0', '0.1.1', '0.2.0-alpha', '0.2.0-alpha.1', '0.2.0-alpha.beta', '0.2.0-beta.2', '0.2.0-beta.11', '0.2.0-rc.1', '0.2.0', '0.10.0', '1.0.0'];
    for (let i = 0; i < ascending.length - 1; i++) {
      const a = ascending[i] as string;
      const b = ascending[i + 1] as string;
      assert.ok(compareVersions(a, b) < 0, `${a} < ${b}`);
      assert.ok(compareVersions(b, a) > 0, `${b} > ${a}`);
    }
    assert.equal(compareVersions('1.2.3', '1.2.3'), 0);
  });

  it('refuses what is not MAJOR.MINOR.PATCH[-PRERELEASE]', () => {
    for (const bad of ['1.2', '01.2.3', '1.2.3+build.5', 'v1.2.3', '1.2.3-', '']) {
      assert.equal(isVersion(bad), false, bad);
      assert.throws(() => parseVersion(bad), VersionError);
    }
  });
});
