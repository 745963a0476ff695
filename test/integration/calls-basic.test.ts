// The B2BUA against SIPp peers: a SIPp caller (uac) authenticates its INVITE and
// calls an extension whose phone is a SIPp callee registered to the agent (uas).
// Each test checks what a user would notice — the caller's final response and its
// Reason, what the callee saw (a CANCEL and why) — and what the operator gets: the
// call record in SQLite and the call.state trail in the log.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { assertAllSucceeded, describeSipp, logValues, runSipp, SIPP_AGENT_CONFIG, writeUsersFile, type SippResult } from '../helpers/sipp.ts';
import { writeFile } from 'node:fs/promises';

const EXTENSIONS = [
  { number: '1001', name: 'Alice', password: 'alice-secret' },
  { number: '1002', name: 'Bob', password: 'bob-secret' },
  { number: '1003', name: 'Carol', password: 'carol-secret' },
  { number: '1004', name: 'Dave', password: 'dave-secret' },
];

function passwordOf(user: string): string {
  const e = EXTENSIONS.find((x) => x.number === user);
  if (!e) throw new Error(`no extension ${user}`);
  return e.password;
}

interface CallRow {
  id: string;
  caller: string;
  dialed: string;
  disposition: string;
  answered_by: string | null;
  final_status: number | null;
  reason: string | null;
}

interface LegRow {
  leg: string;
  direction: string;
  party: string;
  status: number | null;
  ended_by: string | null;
}

/**
 * 1001 calls 1002 whose phone answers 183 with SDP before its 200: returns the o=
 * user name of the SDP the caller got in its 183 ('callee' relayed, 'branchline' anchored).
 */
async function earlyMediaCall(agent: AgentHandle, dir: string): Promise<string[]> {
  const port = await freeUdpTcpPort();
  const users = await writeUsersFile(path.join(dir, `reg-early-${port}.csv`), [{ user: '1002', password: 'bob-secret' }]);
  assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 }), 1);
  const abort = new AbortController();
  const bob = runSipp({ scenario: 'b2bua-uas-early-media', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal, extraArgs: ['-d', '500'] });
  await new Promise((r) => setTimeout(r, 300));
  const file = path.join(dir, `early-${port}.csv`);
  await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];1002\n');
  const r = await runSipp({ scenario: 'b2bua-uac-early-media', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `1002@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
  assertAllSucceeded(r, 1, { allowRetransmissions: true });
  assertAllSucceeded(await bob, 1, { allowRetransmissions: true });
  const unreg = await writeUsersFile(path.join(dir, `unreg-early-${port}.csv`), [{ user: '1002', password: 'bob-secret' }]);
  assertAllSucceeded(await runSipp({ scenario: 'register-unregister-all', remote: `127.0.0.1:${agent.udpPort}`, usersFile: unreg, calls: 1, authUri: agent.domain, set: { domain: agent.domain }, timeoutMs: 10_000 }), 1);
  abort.abort();
  return logValues(r, 'early_origin');
}

describe('B2BUA call flows with SIPp', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-calls-sipp-'));
    agent = await startAgent({
      extensions: EXTENSIONS,
      extraConfig: { ...SIPP_AGENT_CONFIG, dialplan: { ring_timeout: 5 }, media: { bind_address: '127.0.0.1' } },
    });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  function db<T>(fn: (d: DatabaseSync) => T): T {
    const d = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
    try {
      return fn(d);
    } finally {
      d.close();
    }
  }

  /** The record of the call that ended last, with its legs; waits for its commit. */
  async function lastRecord(after: number): Promise<{ call: CallRow; legs: LegRow[] }> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const call = db((d) => d.prepare('SELECT id, caller, dialed, disposition, answered_by, final_status, reason FROM calls WHERE started_at >= ? ORDER BY ended_at DESC LIMIT 1').get(after)) as unknown as CallRow | undefined;
      if (call) {
        const legs = db((d) => d.prepare('SELECT leg, direction, party, status, ended_by FROM call_legs WHERE call_id = ? ORDER BY leg').all(call.id)) as unknown as LegRow[];
        return { call, legs };
      }
      assert.ok(Date.now() < deadline, 'a call record was written');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The call.state transitions the agent logged for a call, in order. */
  function states(callId: string): string[] {
    return agent.logs().filter((l) => l['event'] === 'call.state' && l['call'] === callId).map((l) => String(l['state']));
  }

  async function register(user: string, port: number): Promise<void> {
    const users = await writeUsersFile(path.join(dir, `reg-${user}-${port}.csv`), [{ user, password: passwordOf(user) }]);
    const r = await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 });
    assertAllSucceeded(r, 1);
  }

  async function unregisterAll(user: string): Promise<void> {
    const users = await writeUsersFile(path.join(dir, `unreg-${user}.csv`), [{ user, password: passwordOf(user) }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-unregister-all', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, calls: 1, authUri: agent.domain, set: { domain: agent.domain }, timeoutMs: 10_000 }), 1);
  }

  /** A callee: registers `user` on a fresh port and runs a server scenario there. */
  async function callee(user: string, scenario: string, extraArgs: string[] = []): Promise<{ done: Promise<SippResult>; stop: () => void }> {
    const port = await freeUdpTcpPort();
    await register(user, port);
    const abort = new AbortController();
    const done = runSipp({ scenario, localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal, extraArgs });
    await new Promise((r) => setTimeout(r, 300)); // listening before the INVITE comes
    return { done, stop: () => abort.abort() };
  }

  async function caller(scenario: string, from: string, to: string): Promise<SippResult> {
    const file = path.join(dir, `calls-${from}-${to}-${Date.now()}.csv`);
    await writeFile(file, `SEQUENTIAL\n${from};[authentication username=${from} password=${passwordOf(from)}];${to}\n`);
    return runSipp({ scenario, remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `${to}@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
  }

  test('INVITE/180/200/ACK/BYE through the B2BUA: both sides complete, the record says answered', async () => {
    const t0 = Date.now();
    const bob = await callee('1002', 'call-uas');
    const r = await caller('call-uac', '1001', '1002');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assertAllSucceeded(await bob.done, 1, { allowRetransmissions: true });
    const { call, legs } = await lastRecord(t0);
    assert.deepEqual({ ...call, id: undefined }, { id: undefined, caller: '1001', dialed: '1002', disposition: 'answered', answered_by: '1002', final_status: null, reason: 'Caller hung up' });
    assert.deepEqual(legs.map((l) => [l.leg, l.direction, l.party, l.status, l.ended_by]), [
      ['a', 'inbound', '1001', 200, 'caller'],
      ['b1', 'outbound', '1002', 200, 'caller'],
    ]);
    assert.deepEqual(states(call.id), ['ringing', 'answered', 'ended']);
    await unregisterAll('1002');
  });

  test('the callee is busy: the caller gets 486 with a Reason, the record says busy', async () => {
    const t0 = Date.now();
    const bob = await callee('1002', 'b2bua-uas-busy');
    const r = await caller('b2bua-uac-final', '1001', '1002');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'final'), ['486']);
    assert.match(logValues(r, 'reason')[0] ?? '', /^SIP;cause=486;text="Busy"/);
    assertAllSucceeded(await bob.done, 1);
    const { call } = await lastRecord(t0);
    assert.equal(call.disposition, 'busy');
    assert.equal(call.final_status, 486);
    await unregisterAll('1002');
  });

  test('the caller cancels while it rings: the callee gets CANCEL, the caller 487, the record says cancelled', async () => {
    const t0 = Date.now();
    const bob = await callee('1002', 'b2bua-uas-ring-cancelled');
    const r = await caller('b2bua-uac-cancel', '1001', '1002');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    const b = await bob.done;
    assertAllSucceeded(b, 1);
    const { call, legs } = await lastRecord(t0);
    assert.equal(call.disposition, 'cancelled');
    assert.equal(call.final_status, 487);
    assert.deepEqual(legs.map((l) => [l.leg, l.status, l.ended_by]), [
      ['a', 487, 'cancel'],
      ['b1', 487, 'cancel'],
    ]);
    assert.deepEqual(states(call.id), ['ringing', 'ended']);
    await unregisterAll('1002');
  });

  test('two phones on one extension ring at once; the one that answers wins, the other is cancelled "completed elsewhere"', async () => {
    const t0 = Date.now();
    // The first answers after a second of ringing; the second rings until cancelled.
    const answering = await callee('1003', 'call-uas', ['-d', '1000']);
    const losing = await callee('1003', 'b2bua-uas-ring-cancelled');
    const r = await caller('call-uac', '1001', '1003');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assertAllSucceeded(await answering.done, 1, { allowRetransmissions: true });
    const lost = await losing.done;
    assertAllSucceeded(lost, 1);
    assert.deepEqual(logValues(lost, 'cancel_reason'), ['SIP;cause=200;text="Call completed elsewhere"']);
    const { call, legs } = await lastRecord(t0);
    assert.equal(call.disposition, 'answered');
    assert.equal(call.answered_by, '1003');
    assert.deepEqual(legs.map((l) => [l.leg, l.party, l.status]).sort(), [
      ['a', '1001', 200],
      ['b1', '1003', 200],
      ['b2', '1003', 487],
    ]);
    await unregisterAll('1003');
  });

  test('early media: the callee\'s 183 with SDP reaches the caller as 183 with the agent\'s SDP (anchored)', async () => {
    assert.deepEqual(await earlyMediaCall(agent, dir), ['branchline']);
  });

  test('a malformed SDP offer is answered 488, and the agent keeps serving calls', async () => {
    const t0 = Date.now();
    const r = await caller('b2bua-uac-bad-sdp', '1001', '1002');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'final'), ['488']);
    const { call } = await lastRecord(t0);
    assert.equal(call.final_status, 488);
    assert.equal(call.disposition, 'failed');
    assert.ok(agent.running(), 'the agent is still running');
  });

  test('an unknown number is 404, an extension with no phone registered is 480, each with a Reason', async () => {
    const unknown = await caller('b2bua-uac-final', '1001', '5555');
    assertAllSucceeded(unknown, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(unknown, 'final'), ['404']);
    assert.match(logValues(unknown, 'reason')[0] ?? '', /^SIP;cause=404;/);

    const t0 = Date.now();
    const offline = await caller('b2bua-uac-final', '1001', '1004');
    assertAllSucceeded(offline, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(offline, 'final'), ['480'], describeSipp(offline));
    assert.match(logValues(offline, 'reason')[0] ?? '', /^SIP;cause=480;/);
    const { call } = await lastRecord(t0);
    assert.equal(call.disposition, 'unavailable');
  });

  test('nobody answers within the ring timeout: the callee is cancelled, the caller gets 408, the record says no-answer', async () => {
    const t0 = Date.now();
    const bob = await callee('1002', 'b2bua-uas-ring-cancelled');
    const r = await caller('b2bua-uac-final', '1001', '1002');
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'final'), ['408']);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 5000 && elapsed < 9000, `failed after the 5 s ring timeout (${elapsed} ms)`);
    assertAllSucceeded(await bob.done, 1);
    const { call } = await lastRecord(t0);
    assert.equal(call.disposition, 'no-answer');
    await unregisterAll('1002');
  });
});

describe('B2BUA under its concurrent call limit', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-calls-limit-'));
    agent = await startAgent({
      extensions: EXTENSIONS,
      extraConfig: { ...SIPP_AGENT_CONFIG, calls: { max_concurrent: 1, retry_after: 7 }, media: { bind_address: '127.0.0.1' } },
    });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('a call beyond max_concurrent gets 503 with Retry-After while the first one rings', async () => {
    const port = await freeUdpTcpPort();
    const users = await writeUsersFile(path.join(dir, 'reg.csv'), [{ user: '1002', password: 'bob-secret' }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 }), 1);
    const abort = new AbortController();
    const bob = runSipp({ scenario: 'b2bua-uas-ring-cancelled', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal });
    await new Promise((r) => setTimeout(r, 300));

    const file = (name: string, to: string): Promise<string> =>
      writeFile(path.join(dir, name), `SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];${to}\n`).then(() => path.join(dir, name));
    const first = runSipp({ scenario: 'b2bua-uac-cancel', remote: `127.0.0.1:${agent.udpPort}`, usersFile: await file('first.csv', '1002'), calls: 1, authUri: `1002@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    await agent.waitForLog((l) => l['event'] === 'call.state' && l['state'] === 'ringing', 5000);
    const second = await runSipp({
      scenario: 'b2bua-uac-final',
      remote: `127.0.0.1:${agent.udpPort}`,
      usersFile: await file('second.csv', '1003'),
      calls: 1,
      authUri: `1003@${agent.domain}`,
      set: { domain: agent.domain },
      timeoutMs: 20_000,
      traceMessages: true,
    });
    assertAllSucceeded(second, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(second, 'final'), ['503']);
    assert.match(logValues(second, 'reason')[0] ?? '', /cause=503/);
    assert.match(second.messages, /Retry-After: 7/);
    assertAllSucceeded(await first, 1, { allowRetransmissions: true });
    assertAllSucceeded(await bob, 1);
    abort.abort();
  });
});

describe('B2BUA with direct media', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-calls-nat-'));
    agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy: 'direct', bind_address: '127.0.0.1' } } });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('the only phone refuses the offered media (488): the caller gets 488, not a generic 480', async () => {
    const port = await freeUdpTcpPort();
    const users = await writeUsersFile(path.join(dir, 'reg-488.csv'), [{ user: '1003', password: 'carol-secret' }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 }), 1);
    const abort = new AbortController();
    const carol = runSipp({ scenario: 'b2bua-uas-refuse-media', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal });
    await new Promise((r) => setTimeout(r, 300));
    const file = path.join(dir, 'calls-488.csv');
    await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];1003\n');
    const r = await runSipp({ scenario: 'b2bua-uac-final', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `1003@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'final'), ['488']);
    assert.match(logValues(r, 'reason')[0] ?? '', /^SIP;cause=488;/);
    assertAllSucceeded(await carol, 1);
    abort.abort();
  });

  test('early media under direct media: the callee\'s own SDP reaches the caller in a 183', async () => {
    assert.deepEqual(await earlyMediaCall(agent, dir), ['callee']);
  });

  test('a caller whose Contact and SDP name an unreachable private address is anchored, and its call completes', async () => {
    const seen = new Set(agent.logs().filter((l) => l['event'] === 'call.started').map((l) => String(l['call'])));
    const port = await freeUdpTcpPort();
    const users = await writeUsersFile(path.join(dir, 'reg.csv'), [{ user: '1002', password: 'bob-secret' }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 }), 1);
    const abort = new AbortController();
    const bob = runSipp({ scenario: 'call-uas', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal, traceMessages: true });
    await new Promise((r) => setTimeout(r, 300));
    const file = path.join(dir, 'calls.csv');
    await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];1002\n');
    const started = agent.waitForLog((l) => l['event'] === 'call.started' && l['source'] !== undefined && !seen.has(String(l['call'])), 10_000);
    const r = await runSipp({ scenario: 'b2bua-uac-natted', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `1002@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    const ended0 = String((await started)['call']);
    const callee = await bob;
    assertAllSucceeded(callee, 1, { allowRetransmissions: true });
    // The callee was offered the agent's RTP address, not the caller's unreachable one.
    assert.doesNotMatch(callee.messages, /192\.0\.2\.10/);
    await agent.waitForLog((l) => l['event'] === 'call.ended' && l['call'] === ended0, 5000);
    await new Promise((r2) => setTimeout(r2, 100)); // the record commits within a few ms
    const d = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
    try {
      const row = d.prepare('SELECT media_policy, disposition FROM calls WHERE id = ?').get(ended0) as { media_policy: string; disposition: string } | undefined;
      assert.deepEqual({ ...row }, { media_policy: 'anchored', disposition: 'answered' });
    } finally {
      d.close();
    }
    abort.abort();
  });
});

describe('B2BUA with a media timeout', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-calls-timeout-'));
    agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy: 'anchored', bind_address: '127.0.0.1', media_timeout: 2 } } });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('an answered anchored call whose phones send no RTP is hung up on both sides after media_timeout', async () => {
    const port = await freeUdpTcpPort();
    const users = await writeUsersFile(path.join(dir, 'reg.csv'), [{ user: '1002', password: 'bob-secret' }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, localPort: port, calls: 1, authUri: agent.domain, set: { domain: agent.domain, expires: 600 }, timeoutMs: 10_000 }), 1);
    const abort = new AbortController();
    // It rings 3 s (longer than the timeout): silence before the answer does not count.
    const bob = runSipp({ scenario: 'call-uas', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal, extraArgs: ['-d', '3000'] });
    await new Promise((r) => setTimeout(r, 300));
    const file = path.join(dir, 'calls.csv');
    await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];1002\n');
    const t0 = Date.now();
    const r = await runSipp({ scenario: 'b2bua-uac-await-bye', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `1002@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'bye_reason'), ['SIP;cause=200;text="Media timeout"']);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 5000 && elapsed < 9000, `BYE about 2 s after the answer at 3 s (${elapsed} ms)`);
    assertAllSucceeded(await bob, 1, { allowRetransmissions: true });
    const ended = await agent.waitForLog((l) => l['event'] === 'call.ended', 5000);
    assert.equal(ended['reason'], 'Media timeout');
    abort.abort();
  });
});
