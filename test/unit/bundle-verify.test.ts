// A bundle is checked before anything trusts it: each way of getting it wrong is
// refused with its own code and a one-line reason an operator can act on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { BundleError, type BundleErrorCode } from '../../image/bundle/errors.ts';
import { readBundleParts } from '../../image/bundle/read.ts';
import { keyRingFromFiles, signManifest, type KeyRing } from '../../image/bundle/signing.ts';
import { writeTar } from '../../image/bundle/tar.ts';
import { verifyBundle } from '../../image/bundle/verify.ts';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';

const run = promisify(execFile);
const other = process.arch === 'x64' ? 'arm64' : 'x64';

let dir: string;
let trusted: KeyRing;
let key: ReturnType<typeof testKey>;
let stranger: ReturnType<typeof testKey>;

async function refusal(file: string, opts: { keys?: KeyRing; installed?: string | null } = {}): Promise<BundleError> {
  try {
    await verifyBundle(file, { keys: opts.keys ?? trusted, architecture: process.arch, installedVersion: opts.installed ?? null });
  } catch (err) {
    assert.ok(err instanceof BundleError, `expected a BundleError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'the reason is one line');
    return err;
  }
  assert.fail('the bundle was accepted');
}

async function expectRefused(file: string, code: BundleErrorCode, reason: RegExp, opts: { keys?: KeyRing; installed?: string | null } = {}): Promise<void> {
  const err = await refusal(file, opts);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, reason);
}

/** A copy of `file` with one byte of its image flipped, or its manifest's version rewritten. */
async function tampered(file: string, at: 'image' | 'manifest'): Promise<string> {
  const parts = await readBundleParts(file);
  const bytes = readFileSync(file);
  if (at === 'image') {
    const i = parts.image.offset + Math.floor(parts.image.size / 2);
    bytes[i] = (bytes[i] as number) ^ 0xff;
  } else {
    // Same length, different promise: "0.2.0" becomes "0.9.0".
    const text = bytes.toString('latin1');
    const i = text.indexOf('"version": "0.2.0"');
    assert.ok(i > 0);
    bytes.write('"version": "0.9.0"', i, 'latin1');
  }
  const out = `${file}.${at}-tampered`;
  writeFileSync(out, bytes);
  return out;
}

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-bundle-'));
  key = testKey(dir, 'release');
  stranger = testKey(dir, 'stranger');
  trusted = keyRingFromFiles([key.publicFile]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('bundle verify', () => {
  it('accepts a good bundle and returns its signed manifest', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', minVersion: '0.1.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    const v = await verifyBundle(file, { keys: trusted, architecture: process.arch, installedVersion: '0.1.0' });
    assert.equal(v.manifest.version, '0.2.0');
    assert.equal(v.manifest.min_version, '0.1.0');
    assert.equal(v.manifest.architecture, process.arch);
    assert.match(v.manifest.image.sha256, /^[0-9a-f]{64}$/);
    assert.equal(v.keyId, [...trusted.keys()][0]);
  });

  it('is a plain tar an operator can list: manifest.json, manifest.sig, image.squashfs', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    const { stdout } = await run('tar', ['tf', file]);
    assert.deepEqual(stdout.trim().split('\n'), ['manifest.json', 'manifest.sig', 'image.squashfs']);
  });

  it('refuses a bundle whose image was altered after signing', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(await tampered(file, 'image'), 'EBUNDLE_HASH', /image sha256 .* does not match the signed .*: the image was altered/);
  });

  it('refuses a bundle whose manifest was altered after signing', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(await tampered(file, 'manifest'), 'EBUNDLE_SIGNATURE', /signature does not match the manifest/);
  });

  it('refuses an unsigned bundle', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: null, trusted: [key.publicFile] });
    await expectRefused(file, 'EBUNDLE_UNSIGNED', /^unsigned: the bundle has no manifest.sig$/);
  });

  it('refuses a bundle signed by a key this system does not trust, naming the key', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: stranger.privateKey, trusted: [stranger.publicFile] });
    const strangerId = [...keyRingFromFiles([stranger.publicFile]).keys()][0] as string;
    await expectRefused(file, 'EBUNDLE_UNTRUSTED_KEY', new RegExp(`signed by key ${strangerId}, which is not trusted here`));
  });

  it('refuses to check anything without a trusted key', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(file, 'EBUNDLE_NO_TRUST', /no trusted public key .*--key FILE/, { keys: new Map() });
  });

  it('refuses a bundle built for another architecture', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', architecture: other, signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(file, 'EBUNDLE_ARCH', new RegExp(`built for ${other}, this system is ${process.arch}`));
  });

  it('refuses a bundle that is not newer than the installed version (anti-rollback)', async () => {
    const same = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(same, 'EBUNDLE_TOO_OLD', /version 0\.2\.0 is not newer than the installed 0\.2\.0 \(anti-rollback\)/, { installed: '0.2.0' });
    const older = await makeSyntheticBundle(dir, { version: '0.1.9', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(older, 'EBUNDLE_TOO_OLD', /0\.1\.9 is not newer than the installed 0\.2\.0/, { installed: '0.2.0' });
    const rc = await makeSyntheticBundle(dir, { version: '0.2.0-rc.1', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(rc, 'EBUNDLE_TOO_OLD', /0\.2\.0-rc\.1 is not newer/, { installed: '0.2.0' });
  });

  it('refuses a bundle whose min_version is above the installed version', async () => {
    const file = await makeSyntheticBundle(dir, { version: '0.3.0', minVersion: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    await expectRefused(file, 'EBUNDLE_MIN_VERSION', /version 0\.3\.0 installs only over 0\.2\.0 or later; installed is 0\.1\.5/, { installed: '0.1.5' });
  });

  it('refuses a file that is not a bundle, and a truncated one', async () => {
    const junk = path.join(dir, 'junk.bundle');
    writeFileSync(junk, Buffer.alloc(4096, 7));
    await expectRefused(junk, 'EBUNDLE_FORMAT', /not a Branchline bundle: not a ustar archive/);
    const file = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
    const short = path.join(dir, 'short.bundle');
    writeFileSync(short, readFileSync(file).subarray(0, 3000));
    await expectRefused(short, 'EBUNDLE_FORMAT', /not a Branchline bundle/);
    await expectRefused(path.join(dir, 'absent.bundle'), 'EBUNDLE_READ', /cannot read .*ENOENT/);
  });

  it('refuses a signed manifest this build does not understand', async () => {
    // A well-formed bundle whose signed manifest carries a field we do not know.
    const manifest = Buffer.from(JSON.stringify({ format: 1, name: 'branchline', version: '0.2.0', architecture: process.arch, min_version: '0.0.0', node: '24', image: { file: 'image.squashfs', size: 4, sha256: '0'.repeat(64), unpacked_size: 4, compression: 'gzip' }, surprise: true }));
    const sig = signManifest(manifest, key.privateKey);
    const file = path.join(dir, 'future.bundle');
    const out = await open(file, 'w');
    await writeTar(out, [{ name: 'manifest.json', data: manifest, size: manifest.length }, { name: 'manifest.sig', data: sig, size: sig.length }, { name: 'image.squashfs', data: Buffer.from('abcd'), size: 4 }], 0);
    await out.close();
    await expectRefused(file, 'EBUNDLE_MANIFEST', /manifest is not valid: surprise is not a known field/);
  });
});
