// The trunks subsystem as the agent starts it: line cards from linecards[] through the
// drivers factory, and the trunk service over them. The sample config's shape: one
// simulated E1 and one DID, nothing else.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { createLogger } from '../../agent/log/logger.ts';
import type { InboundTrunkCall } from '../../agent/trunks/trunk-service.ts';
import { Trunks } from '../../agent/trunks/trunks.ts';
import { SimControlClient } from '../../drivers/sim/control-client.ts';
import type { SimCard } from '../../drivers/sim/sim-card.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';

test('one sim card and one DID are enough: a PSTN call to the DID is offered for its extension', async () => {
  const port = await freeUdpTcpPort();
  const config = configFromData(
    {
      site: { id: 'branch-01' },
      sip: { domain: 'example.test' },
      extensions: [{ number: '1001', password: 'secret-1' }],
      linecards: [{ driver: 'sim', name: 'pstn', type: 'e1', control: `127.0.0.1:${port}` }],
      dids: [{ number: '5550100', extension: '1001' }],
    },
    'test.yaml',
  );
  const trunks = new Trunks({ config, logger: createLogger('silent'), cardOptions: { timeScale: 0.02 } });
  await trunks.start();
  try {
    assert.equal(trunks.service.allocator.snapshot().channels.length, 30, 'every E1 channel is in the default trunk group');
    const offered: InboundTrunkCall[] = [];
    trunks.service.onInbound((call) => {
      offered.push(call);
      void call.answer();
    });
    const call = (trunks.cards[0] as SimCard).pstn.placeCall({ from: '2125550147', to: '5550100' });
    await once(call, 'answered');
    assert.deepEqual(offered[0]?.target, { kind: 'extension', extension: '1001' });
    assert.equal(offered[0]?.tenant, 'default');
    call.hangup();
    // The card's control socket (what `branchline sim call` uses) is up while the trunks run.
    const client = await SimControlClient.connect(`127.0.0.1:${port}`).catch((err: unknown) => err);
    assert.ok(client instanceof SimControlClient, `control socket reachable: ${String(client)}`);
    client.close();
  } finally {
    await trunks.stop();
  }
  assert.throws(() => trunks.service, /not started/);
});
