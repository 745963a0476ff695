// The same release built twice is the same bundle, byte for byte: fixed timestamps in
// the image and the container, fixed key order in the manifest, and ed25519 signatures
// that are deterministic. A rebuild can be checked against a published bundle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-repro-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('bundle build', () => {
  it('is reproducible: same inputs and key, same bytes; another version, other bytes', async () => {
    const key = testKey(dir, 'release');
    const spec = { version: '1.4.2', minVersion: '1.3.0', signingKey: key.privateKey, trusted: [key.publicFile] };
    const first = await makeSyntheticBundle(dir, spec);
    const second = await makeSyntheticBundle(dir, spec);
    assert.notEqual(first, second);
    assert.equal(sha(first), sha(second));
    const other = await makeSyntheticBundle(dir, { ...spec, version: '1.4.3' });
    assert.notEqual(sha(other), sha(first));
  });
});
