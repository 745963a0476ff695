// Versions are the MAJOR.MINOR.PATCH[-PRERELEASE] subset of semver 2.0: enough for
// release trains and release candidates, small enough to compare without a library.
// Build metadata (+...) is refused: two bundles must never differ only by it, or the
// anti-rollback rule could not tell them apart.

export interface Version {
  major: number;
  minor: number;
  patch: number;
  prerelease: Array<string | number>;
}

const pattern = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

export class VersionError extends Error {
  readonly code = 'EVERSION';
}

export function isVersion(text: string): boolean {
  return pattern.test(text);
}

export function parseVersion(text: string): Version {
  const m = pattern.exec(text);
  if (!m) throw new VersionError(`"${text}" is not a version (expected MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRERELEASE)`);
  const prerelease = m[4] === undefined ? [] : m[4].split('.').map((id) => (/^[0-9]+$/.test(id) ? Number(id) : id));
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease };
}

function compareIdentifiers(a: string | number, b: string | number): number {
  // Semver 11.4: numeric identifiers sort before alphanumeric ones.
  if (typeof a === 'number' && typeof b === 'number') return Math.sign(a - b);
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative when a < b, 0 when equal, positive when a > b (semver precedence). */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (const key of ['major', 'minor', 'patch'] as const) {
    if (x[key] !== y[key]) return Math.sign(x[key] - y[key]);
  }
  // A release outranks its own pre-releases (1.0.0-rc.1 < 1.0.0).
  if (x.prerelease.length === 0 || y.prerelease.length === 0) return Math.sign(y.prerelease.length - x.prerelease.length);
  const n = Math.max(x.prerelease.length, y.prerelease.length);
  for (let i = 0; i < n; i++) {
    const p = x.prerelease[i];
    const q = y.prerelease[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const c = compareIdentifiers(p, q);
    if (c !== 0) return c;
  }
  return 0;
}
