// pre-reboot never drops a call: it waits for the calls to end, and at its deadline it
// postpones the switch rather than cut anyone off. The agent has no call core yet, so
// the calls come from a stub source here (the real source reads `active_calls` from
// the agent's status, absent today, and is exercised by the integration test).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Journal } from '../../firmware-hooks/journal.ts';
import type { ActiveCallsSource } from '../../firmware-hooks/probes/active-calls.ts';
import { HookFailure } from '../../firmware-hooks/types.ts';
import { keyRingFromFiles, type KeyRing } from '../../image/bundle/signing.ts';
import { SlotTree } from '../../image/slots/tree.ts';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';
import { installUpdate } from '../../image/update.ts';

let dir: string;
let keys: KeyRing;
let bundle010: string;
let bundle020: string;

/** Calls that end at given moments: `ends` are milliseconds from the first question. */
function callsEndingAt(ends: number[]): ActiveCallsSource & { asked: number } {
  let first: number | undefined;
  const source = {
    description: 'stub: calls ending on a schedule',
    asked: 0,
    activeCalls: async () => {
      source.asked++;
      first ??= performance.now();
      const now = performance.now() - first;
      return ends.filter((end) => end > now).length;
    },
  };
  return source;
}

async function flashedTree(): Promise<SlotTree> {
  const tree = SlotTree.open(path.join(mkdtempSync(path.join(dir, 'tree-')), 'slots'), { create: true });
  await installUpdate({ tree, bundle: bundle010, keys, calls: callsEndingAt([]), callDeadlineMs: 0, stateDir: null });
  return tree;
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-prereboot-'));
  const key = testKey(dir, 'release');
  keys = keyRingFromFiles([key.publicFile]);
  bundle010 = await makeSyntheticBundle(dir, { version: '0.1.0', signingKey: key.privateKey, trusted: [key.publicFile] });
  bundle020 = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('pre-reboot', () => {
  it('waits until the active calls have ended, then switches', async () => {
    const tree = await flashedTree();
    const calls = callsEndingAt([300, 600]);
    const started = performance.now();
    const result = await installUpdate({ tree, bundle: bundle020, keys, calls, callDeadlineMs: 10_000, callPollMs: 50, stateDir: null });
    assert.equal(result.status, 'selected');
    assert.equal(tree.boot.selected(), 'b');
    const entry = new Journal(tree.journalFile).entries().find((e) => e.hook === 'pre-reboot');
    assert.equal(entry?.status, 'ok');
    assert.match(entry?.detail ?? '', /^waited \d+\.\d s for 2 call\(s\) to end/);
    const waited = Number(entry?.data?.['waited_ms']);
    assert.ok(waited >= 550 && waited < 5000, `waited ${waited} ms for calls that ended at 600 ms`);
    assert.ok(performance.now() - started >= 550);
    assert.ok(calls.asked > 3, 'it kept asking while calls were up');
  });

  it('postpones at the deadline with calls still up: no switch, the slot stays installed for a retry', async () => {
    const tree = await flashedTree();
    const calls = callsEndingAt([60_000]);
    await assert.rejects(
      installUpdate({ tree, bundle: bundle020, keys, calls, callDeadlineMs: 300, callPollMs: 50, stateDir: null }),
      (err: unknown) => {
        assert.ok(err instanceof HookFailure);
        assert.equal(err.code, 'EHOOK_POSTPONED');
        assert.match(err.outcome.detail, /^1 call\(s\) still active after 0\.[3-9] s \(deadline 0\.3 s\); not switching — run the update again to retry$/);
        return true;
      },
    );
    assert.equal(tree.boot.selected(), 'a', 'the running slot keeps running');
    const state = tree.readState();
    assert.equal(state.trial, null);
    assert.equal(state.slots.b.state, 'installed');
    assert.equal(new Journal(tree.journalFile).entries().at(-1)?.status, 'postponed');
  });
});
