// `branchline update` on a slot tree, with small synthetic bundles: the running slot
// is never touched, every step lands in the journal, and what the slots view shows is
// what an operator would need to know.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { keyRingFromFiles } from '../../image/bundle/signing.ts';
import { runImageCommand, type ImageOptions } from '../../image/cli.ts';
import { commit } from '../../firmware-hooks/commit.ts';
import { Journal } from '../../firmware-hooks/journal.ts';
import { noAgentCalls } from '../../firmware-hooks/probes/active-calls.ts';
import { HookFailure } from '../../firmware-hooks/types.ts';
import type { SlotsReport } from '../../image/slots/view.ts';
import { SlotTree } from '../../image/slots/tree.ts';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';
import { installUpdate } from '../../image/update.ts';

let dir: string;
let key: ReturnType<typeof testKey>;
let next: ReturnType<typeof testKey>;
let root: string;
const bundles: Record<string, string> = {};

async function cli(command: string, args: string[], values: ImageOptions): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runImageCommand(command, args, values, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

async function slotsJson(): Promise<SlotsReport> {
  const r = await cli('slots', [], { slots: root, json: true });
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as SlotsReport;
}

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function flash(version = '0.1.0'): Promise<void> {
  const r = await cli('update', [bundles[version] as string], { slots: root, key: [key.publicFile] });
  assert.equal(r.code, 0, r.err);
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-slots-'));
  key = testKey(dir, 'release');
  next = testKey(dir, 'next-release');
  const signed = { signingKey: key.privateKey, trusted: [key.publicFile] };
  bundles['0.1.0'] = await makeSyntheticBundle(dir, { version: '0.1.0', ...signed });
  bundles['0.2.0'] = await makeSyntheticBundle(dir, { version: '0.2.0', minVersion: '0.1.0', ...signed });
  bundles['0.0.9'] = await makeSyntheticBundle(dir, { version: '0.0.9', ...signed });
  bundles['liar'] = await makeSyntheticBundle(dir, { version: '0.2.0', reportsVersion: '0.1.0', ...signed });
  bundles['keyless'] = await makeSyntheticBundle(dir, { version: '0.2.0', withoutKeys: true, ...signed });
  // Key rotation: 0.2.0 signed by the old key trusts only the new one...
  bundles['rotate'] = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [next.publicFile] });
  // ...so 0.3.0 signed by the new key installs after it, and not before it.
  bundles['0.3.0-next'] = await makeSyntheticBundle(dir, { version: '0.3.0', signingKey: next.privateKey, trusted: [next.publicFile] });
});

beforeEach(() => {
  root = path.join(mkdtempSync(path.join(dir, 'tree-')), 'slots');
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('update into a slot tree', () => {
  it('flashes an empty tree into slot a, committed at once, only with an explicit --key', async () => {
    const refused = await cli('update', [bundles['0.1.0'] as string], { slots: root });
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^refused: slot tree .* is empty: the first install needs --key FILE/);
    await flash();
    assert.equal(readlinkSync(path.join(root, 'current')), 'slots/a');
    const report = await slotsJson();
    assert.equal(report.active, 'a');
    assert.equal(report.trial, null);
    assert.deepEqual(report.slots.map((s) => [s.name, s.active, s.state, s.version]), [
      ['a', true, 'committed', '0.1.0'],
      ['b', false, 'empty', null],
    ]);
    assert.ok(existsSync(path.join(root, 'slots/a/bin/branchline')));
  });

  it('installs the next version into the inactive slot, selects it on trial, leaves the running slot untouched', async () => {
    await flash();
    const before = digest(path.join(root, 'slots/a/bin/branchline'));
    const r = await cli('update', [bundles['0.2.0'] as string], { slots: root });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /installed branchline 0\.2\.0 into slot b; it starts next, on trial \(fallback: slot a 0\.1\.0\)/);
    assert.equal(digest(path.join(root, 'slots/a/bin/branchline')), before);
    assert.equal(readlinkSync(path.join(root, 'current')), 'slots/b');
    const report = await slotsJson();
    assert.equal(report.active, 'b');
    assert.deepEqual(report.trial && [report.trial.slot, report.trial.previous, report.trial.boots], ['b', 'a', 0]);
    assert.deepEqual(report.slots.map((s) => [s.name, s.state, s.version]), [
      ['a', 'committed', '0.1.0'],
      ['b', 'trial', '0.2.0'],
    ]);
    const steps = new Journal(path.join(root, 'journal.jsonl')).entries().filter((e) => e.version === '0.2.0');
    assert.deepEqual(steps.slice(-6).map((e) => [e.hook, e.status]), [
      ['install-check', 'ok'],
      ['pre-install', 'ok'],
      ['install', 'ok'],
      ['post-install', 'ok'],
      ['pre-reboot', 'ok'],
      ['switch', 'ok'],
    ]);
    assert.ok(!existsSync(path.join(root, 'work')), 'the work copy of the image is gone');
  });

  it('refuses an older bundle through the running slot, and nothing changes', async () => {
    await flash();
    const state = readFileSync(path.join(root, 'state.json'), 'utf8');
    const r = await cli('update', [bundles['0.0.9'] as string], { slots: root });
    assert.equal(r.code, 1);
    assert.equal(r.err, 'refused: version 0.0.9 is not newer than the installed 0.1.0 (anti-rollback)\n');
    assert.equal(readFileSync(path.join(root, 'state.json'), 'utf8'), state);
    assert.ok(!existsSync(path.join(root, 'slots/b')));
  });

  it('refuses a second update while one is on trial', async () => {
    await flash();
    assert.equal((await cli('update', [bundles['0.2.0'] as string], { slots: root })).code, 0);
    const r = await cli('update', [bundles['0.3.0-next'] as string], { slots: root, key: [next.publicFile] });
    assert.equal(r.code, 1);
    assert.match(r.err, /^refused: slot b is on trial since .*; it must commit or roll back before another update\n$/);
  });

  it('fails post-install when the new binary does not report the promised version, and marks the slot unusable', async () => {
    await flash();
    const r = await cli('update', [bundles['liar'] as string], { slots: root });
    assert.equal(r.code, 1);
    assert.match(r.err, /^post-install failed: slot b: the binary reports "branchline 0\.1\.0", expected "branchline 0\.2\.0"\n$/);
    const report = await slotsJson();
    assert.equal(report.active, 'a');
    assert.equal(report.slots[1]?.state, 'empty');
    assert.match(report.slots[1]?.reason ?? '', /install failed/);
  });

  it('fails post-install for an image without keys: it could never verify another update', async () => {
    await flash();
    const r = await cli('update', [bundles['keyless'] as string], { slots: root });
    assert.equal(r.code, 1);
    assert.match(r.err, /carries no public key in keys\/: it could never verify another update/);
    assert.equal(readlinkSync(path.join(root, 'current')), 'slots/a');
  });

  it('moves the chain of trust with each release: the next update is checked with the new slot keys', async () => {
    await flash();
    // Signed by a key slot a does not know: refused.
    const early = await cli('update', [bundles['0.3.0-next'] as string], { slots: root });
    assert.equal(early.code, 1);
    assert.match(early.err, /^refused: signed by key [0-9a-f]{16}, which is not trusted here/);
    // 0.2.0 (signed by the old key) ships the new key; once it is committed, 0.3.0 goes in.
    assert.equal((await cli('update', [bundles['rotate'] as string], { slots: root })).code, 0);
    await commit(SlotTree.open(root));
    const later = await cli('update', [bundles['0.3.0-next'] as string], { slots: root });
    assert.equal(later.code, 0, later.err);
    assert.equal((await slotsJson()).slots[0]?.version, '0.3.0');
  });

  it('takes the tree lock: a second updater is told who holds it', async () => {
    await flash();
    writeFileSync(path.join(root, 'lock'), `${process.ppid}\n`);
    const r = await cli('update', [bundles['0.2.0'] as string], { slots: root });
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`busy: process ${process.ppid} holds its lock`));
    rmSync(path.join(root, 'lock'));
  });

  it('resumes an interrupted update without unpacking again (idempotent steps)', async () => {
    await flash();
    const tree = SlotTree.open(root);
    const keys = keyRingFromFiles([key.publicFile]);
    // First attempt: postponed at pre-reboot (a call that never ends, zero deadline).
    const busy = { description: 'stub: one call that never ends', activeCalls: async () => 1 };
    await assert.rejects(
      installUpdate({ tree, bundle: bundles['0.2.0'] as string, keys, calls: busy, callDeadlineMs: 0, stateDir: null }),
      (err: unknown) => err instanceof HookFailure && err.code === 'EHOOK_POSTPONED',
    );
    assert.equal(tree.boot.selected(), 'a');
    assert.equal(tree.readState().slots.b.state, 'installed');
    const result = await installUpdate({ tree, bundle: bundles['0.2.0'] as string, keys, calls: noAgentCalls, callDeadlineMs: 0, stateDir: null });
    assert.equal(result.status, 'selected');
    const last = new Journal(tree.journalFile).entries().slice(-6);
    assert.deepEqual(last.map((e) => [e.hook, e.status]), [
      ['install-check', 'ok'],
      ['pre-install', 'skipped'],
      ['install', 'skipped'],
      ['post-install', 'ok'],
      ['pre-reboot', 'ok'],
      ['switch', 'ok'],
    ]);
  });
});
