// The peers directory between two real agents (`branchline start`) over a real
// Mosquitto, asked as an operator asks: the `peers.lookup` / `peers.list` site
// commands. Each agent sees the other's extensions; a killed agent turns offline
// through its Last Will; after the broker restarts with nothing retained, and after
// an agent restart while the broker is down, the cached directory still answers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { encode, topics, type PeerHome, type PeerSummary, type Request } from '../../agent/sync/protocol.ts';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/site-sync.ts';

let broker: MosquittoHandle;
let a: AgentHandle;
let b: AgentHandle;
const handles: AgentHandle[] = [];

function agent(site: string, extensions: string[], dids: Array<Record<string, unknown>>, stateDir?: string): Promise<AgentHandle> {
  return startAgent({
    extensions: extensions.map((number) => ({ number, password: 'pw-' + number })),
    ...(stateDir ? { stateDir } : {}),
    extraConfig: { site: { id: site }, mqtt: { url: broker.url, reconnect_period: 0.2, keepalive: 5 }, health: { telemetry_period: 3600 }, dids },
  }).then((h) => {
    handles.push(h);
    return h;
  });
}

/** Sends a site command over MQTT and returns the response's data (throws on an error response). */
async function command<T>(site: string, name: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
  const client: MqttClient = await mqtt.connectAsync(broker.url, { clientId: `asker-${crypto.randomUUID().slice(0, 8)}`, protocolVersion: 5 });
  try {
    const replyTo = `test/replies/${crypto.randomUUID()}`;
    const answer = new Promise<Record<string, unknown>>((resolve) => client.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>)));
    await client.subscribeAsync(replyTo, { qos: 1 });
    const req: Request = { v: 1, id: crypto.randomUUID(), stream: 'cmd', seq: 1, boot: 'test', ts: Date.now(), name, args, response_topic: replyTo, correlation: 'c' };
    await client.publishAsync(topics.siteCommand(site), encode(req), { qos: 1 });
    const res = await Promise.race([answer, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer to ${name} from ${site}`)), timeoutMs))]);
    if (res['status'] !== 'ok') throw new Error(`${name}: ${JSON.stringify(res['error'])}`);
    return res['data'] as T;
  } finally {
    await client.endAsync();
  }
}

before(async () => {
  broker = await startMosquitto();
  a = await agent('site-a', ['1001', '1002'], [{ number: '+15550101001', extension: '1001' }]);
  b = await agent('site-b', ['2001'], [{ number: '+15550202000', extension: '2001' }]);
});

after(async () => {
  for (const h of handles) await h.cleanup();
  await broker?.cleanup();
});

test("each agent finds the other agent's extensions, with its SIP address", async () => {
  const fromA = await waitFor('site-b’s 2001 at site-a', async () => {
    const home = await command<PeerHome | null>('site-a', 'peers.lookup', { number: '2001' });
    return home?.reachable ? home : undefined;
  });
  assert.deepEqual(fromA, { siteId: 'site-b', sipAddress: `127.0.0.1:${b.udpPort}`, domain: 'branchline.test', transport: 'udp', presence: 'online', reachable: true, kind: 'extension', extension: '2001', did: '+15550202000' });
  const fromB = await waitFor('site-a’s 1002 at site-b', async () => {
    const home = await command<PeerHome | null>('site-b', 'peers.lookup', { number: '1002' });
    return home?.reachable ? home : undefined;
  });
  assert.equal(fromB.siteId, 'site-a');
  assert.equal(fromB.sipAddress, `127.0.0.1:${a.udpPort}`);
  assert.equal((await command<PeerHome>('site-b', 'peers.lookup', { number: '+15550101001' })).extension, '1001');
  assert.equal(await command<PeerHome | null>('site-a', 'peers.lookup', { number: '7777' }), null);
  const list = await command<PeerSummary[]>('site-a', 'peers.list');
  assert.deepEqual(
    list.map((p) => [p.site, p.extensions, p.dids, p.presence]),
    [
      ['site-a', 2, 1, 'online'],
      ['site-b', 1, 1, 'online'],
    ],
  );
  await assert.rejects(command('site-a', 'peers.lookup', {}), /EBADARGS/);
});

test('a killed agent turns offline at its peers through its Last Will', async () => {
  b.kill();
  const home = await waitFor('site-b offline at site-a', async () => {
    const h = await command<PeerHome>('site-a', 'peers.lookup', { number: '2001' });
    return h.presence === 'offline' ? h : undefined;
  });
  assert.equal(home.reachable, false);
  assert.equal(home.siteId, 'site-b', 'still known: the dial plan can fall back to its DID');
  assert.equal(home.did, '+15550202000');
});

test('the cache answers after a broker restart and after an agent restart during WAN loss', async () => {
  // The broker dies and comes back empty (no persistence): site-b's retained
  // directory is gone, and site-b is not there to publish it again.
  broker.kill();
  await a.stop();
  const dirA = a.stateDir;
  a = await agent('site-a', ['1001', '1002'], [{ number: '+15550101001', extension: '1001' }], dirA);
  await broker.start();
  const home = await waitFor('site-a reconnected', async () => command<PeerHome | null>('site-a', 'peers.lookup', { number: '2001' }, 1000).catch(() => undefined), 20_000);
  assert.ok(home);
  assert.equal(home.siteId, 'site-b');
  assert.equal(home.sipAddress, `127.0.0.1:${b.udpPort}`);
  assert.equal(home.reachable, false);
  assert.ok(a.logs().some((l) => l['event'] === 'peers.started' && (l['cached'] as number) >= 1), 'the directory was loaded from the store at start');
});
