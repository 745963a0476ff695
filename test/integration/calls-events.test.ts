// What subscribers of the agent's event bus (sync, metering) get from calls: one
// call.state event per state change, in order, and call.ended carrying the same
// CallRecord the store holds. The agent runs in this process so the test can
// subscribe to its bus; the phones are SIPp, as in calls-basic.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../../agent/agent.ts';
import type { CallRecord } from '../../agent/calls/call-record.ts';
import { configFromData } from '../../agent/config/load.ts';
import type { AgentEvents } from '../../agent/events/bus.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { CallRecordStore } from '../../agent/store/call-records.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { assertAllSucceeded, runSipp, writeUsersFile } from '../helpers/sipp.ts';

const DOMAIN = 'branchline.test';

describe('call events on the bus', () => {
  let agent: Agent;
  let dir: string;
  let sipPort: number;
  const states: Array<AgentEvents['call.state']> = [];
  const ended: CallRecord[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-call-events-'));
    sipPort = await freeUdpTcpPort();
    const mqttPort = await freeUdpTcpPort();
    const config = configFromData(
      {
        site: { id: 'events-site' },
        state_dir: path.join(dir, 'state'),
        log: { level: 'silent' },
        sip: { domain: DOMAIN, udp: `127.0.0.1:${sipPort}`, tcp: `127.0.0.1:${sipPort}`, auth: { algorithms: ['MD5'] } },
        media: { bind_address: '127.0.0.1' },
        mqtt: { embedded: { listen: `127.0.0.1:${mqttPort}` } },
        extensions: [
          { number: '1001', password: 'alice-secret' },
          { number: '1002', name: 'Bob', password: 'bob-secret' },
        ],
      },
      path.join(dir, 'config.yaml'),
    );
    agent = new Agent(config, createLogger('silent'));
    agent.bus.on('call.state', (e) => states.push(e));
    agent.bus.on('call.ended', (e) => ended.push(e.record));
    await agent.start();
  });

  after(async () => {
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('an answered call: routing, ringing, answered, ended, then its record — the one in the store', async () => {
    const port = await freeUdpTcpPort();
    const users = await writeUsersFile(path.join(dir, 'reg.csv'), [{ user: '1002', password: 'bob-secret' }]);
    assertAllSucceeded(await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${sipPort}`, usersFile: users, localPort: port, calls: 1, authUri: DOMAIN, set: { domain: DOMAIN, expires: 600 }, timeoutMs: 10_000 }), 1);
    const abort = new AbortController();
    const bob = runSipp({ scenario: 'call-uas', localPort: port, calls: 1, timeoutMs: 30_000, abort: abort.signal });
    await new Promise((r) => setTimeout(r, 300));
    const file = path.join(dir, 'calls.csv');
    await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];1002\n');
    assertAllSucceeded(await runSipp({ scenario: 'call-uac', remote: `127.0.0.1:${sipPort}`, usersFile: file, calls: 1, authUri: `1002@${DOMAIN}`, set: { domain: DOMAIN }, timeoutMs: 20_000 }), 1, { allowRetransmissions: true });
    assertAllSucceeded(await bob, 1, { allowRetransmissions: true });

    assert.deepEqual(
      states.map((e) => [e.previous, e.state, e.caller, e.dialed, e.answeredBy]),
      [
        [undefined, 'routing', '1001', '1002', undefined],
        ['routing', 'ringing', '1001', '1002', undefined],
        ['ringing', 'answered', '1001', '1002', '1002'],
        ['answered', 'ended', '1001', '1002', '1002'],
      ],
    );
    const ids = new Set(states.map((e) => e.id));
    assert.equal(ids.size, 1, 'every event names the same call');
    assert.ok(states.every((e, i) => i === 0 || e.at >= (states[i - 1]?.at ?? 0)), 'times never go back');

    assert.equal(ended.length, 1);
    const record = ended[0] as CallRecord;
    assert.equal(record.id, states[0]?.id);
    assert.equal(record.siteId, 'events-site');
    assert.equal(record.disposition, 'answered');
    assert.ok(record.modeDurations.bridged >= 0 && record.modeDurations.application === 0);

    // The record on the bus is the record in SQLite.
    const db = await Database.open(path.join(dir, 'state', 'branchline.sqlite'));
    try {
      const committer = new GroupCommitter(db, { coalesceMs: 0 });
      const stored = await new CallRecordStore(db, committer).get(record.id);
      assert.deepEqual(stored, record);
    } finally {
      await db.close();
    }
    abort.abort();
  });
});
