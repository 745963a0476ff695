// The agent with a simulated E1 and one DID, as a newcomer starts it: the trunks come
// up with the card's 30 channels, the card's control socket answers from outside, a
// pulled cable is logged as a span alarm and its return too, and the hourly usage
// table is in the agent's store when it stops.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { Database } from '../../agent/store/db.ts';
import { loadHourlyUsage } from '../../agent/trunks/usage-store.ts';
import { SimControlClient } from '../../drivers/sim/control-client.ts';
import { startAgent } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';

test('the agent runs its sim card through the trunks: alarms logged, usage stored', async () => {
  const control = `127.0.0.1:${await freeUdpTcpPort()}`;
  const agent = await startAgent({
    extensions: [{ number: '1001', password: 'alice-1001-secret' }],
    extraConfig: {
      linecards: [{ driver: 'sim', name: 'pstn', type: 'e1', control }],
      dids: [{ number: '5550100', extension: '1001' }],
    },
  });
  try {
    const started = await agent.waitForLog((l) => l['msg'] === 'trunks started', 10_000);
    assert.equal(started['channels'], 30);
    assert.deepEqual(started['groups'], ['pstn']);

    const client = await SimControlClient.connect(control);
    try {
      await client.request({ op: 'cable.pull', span: 1 });
      const alarm = await agent.waitForLog((l) => String(l['msg']).startsWith('span alarm:'), 5000);
      assert.equal(alarm['card'], 'pstn');
      assert.equal(alarm['alarm'], 'loss-of-signal');
      await client.request({ op: 'cable.plug', span: 1 });
      await agent.waitForLog((l) => l['msg'] === 'span alarm cleared', 10_000);
    } finally {
      client.close();
    }
    assert.equal(await agent.stop(), 0);
    const db = await Database.open(path.join(agent.stateDir, 'branchline.sqlite'), { readonly: true });
    try {
      const rows = await loadHourlyUsage(db, { from: 0, to: Date.now() + 3_600_000, tenant: '*' });
      assert.equal(rows.length, 1, 'the hour the agent ran is recorded for the box');
      assert.equal(rows[0]?.attemptsIn, 0);
    } finally {
      await db.close();
    }
  } finally {
    await agent.cleanup();
  }
});
