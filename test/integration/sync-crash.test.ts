// The real agent (`branchline start`) with records queued in its outbox, drained to
// the controller over a real Mosquitto, killed with SIGKILL in the middle of the
// drain and started again: every record arrives at the controller exactly once, in
// stream order, and the broker announces the dead agent through its Last Will.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { storeFileName } from '../../agent/agent.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { Controller } from '../../controller/service.ts';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/site-sync.ts';

const SITE = 'site-crash';
const RECORDS = 6000;

/** Queues call records in a stopped agent's store, as the call core will (one multi-row insert for speed). */
async function seedOutbox(stateDir: string, count: number): Promise<void> {
  const db = await Database.open(path.join(stateDir, storeFileName));
  await migrate(db);
  const statements = [];
  for (let start = 0; start < count; start += 400) {
    const n = Math.min(400, count - start);
    const params = [];
    for (let i = start; i < start + n; i++) {
      const data = JSON.stringify({ call_id: `call-${i}`, from: '1001', to: '1002', duration_s: i % 300 });
      params.push(`rec-${i}`, 'records', i + 1, 'type', 'seed-boot', Date.now(), data, Buffer.byteLength(data));
    }
    statements.push({
      sql: `INSERT INTO sync_outbox (msg_id, stream, seq, type, boot, ts, data, bytes) VALUES ${Array(n).fill('(?,?,?,?,?,?,?,?)').join(',')}`,
      params: params.map((p) => (p === 'type' ? 'call.record' : p)),
    });
  }
  statements.push({ sql: 'INSERT INTO sync_streams (stream, seq) VALUES (?, ?)', params: ['records', count] });
  await db.transaction(statements);
  await db.close();
}

let broker: MosquittoHandle;
let controller: Controller;
let controllerDir: string;
let stateDir: string;
let observer: MqttClient;
const agents: AgentHandle[] = [];
const states: Array<{ state: string; retain: boolean; boot: string }> = [];

before(async () => {
  broker = await startMosquitto();
  controllerDir = mkdtempSync(path.join(tmpdir(), 'bl-crash-ctl-'));
  stateDir = mkdtempSync(path.join(tmpdir(), 'bl-crash-site-'));
  controller = new Controller({ broker: broker.url, stateDir: controllerDir, logger: createLogger('silent') });
  await controller.start();
  observer = await mqtt.connectAsync(broker.url, { clientId: 'crash-observer', protocolVersion: 5 });
  observer.on('message', (_topic, payload, packet) => {
    const p = JSON.parse(payload.toString()) as { state: string; boot: string };
    states.push({ state: p.state, boot: p.boot, retain: packet.retain });
  });
  await observer.subscribeAsync(`branchline/v1/site/${SITE}/state`, { qos: 1, rap: true });
});

after(async () => {
  for (const a of agents) await a.cleanup();
  await observer?.endAsync();
  await controller?.stop();
  await broker?.cleanup();
  rmSync(controllerDir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
});

function start(): Promise<AgentHandle> {
  return startAgent({
    extensions: [],
    stateDir,
    extraConfig: {
      site: { id: SITE },
      mqtt: { url: broker.url, reconnect_period: 0.2 },
      // A small window keeps the drain slow enough to be cut in the middle.
      sync: { window: 10, ack_timeout: 2 },
      health: { telemetry_period: 3600 },
    },
  }).then((a) => {
    agents.push(a);
    return a;
  });
}

test('kill -9 in the middle of draining loses nothing and duplicates nothing', async () => {
  await seedOutbox(stateDir, RECORDS);
  const first = await start();
  await waitFor('part of the drain', async () => (await controller.store.count(SITE, 'records')) >= RECORDS / 6, 20_000, 10);
  first.kill();
  await waitFor('the agent to die', () => !first.running(), 20_000);
  const atKill = await controller.store.count(SITE, 'records');
  assert.ok(atKill < RECORDS, `the drain should have been cut in the middle (had ${atKill})`);

  // The broker publishes the Last Will: retained, offline, from the dead boot.
  const firstBoot = states.find((s) => s.state === 'online')?.boot;
  const will = await waitFor('the Last Will', () => states.find((s) => s.state === 'offline'), 20_000);
  assert.equal(will.retain, true);
  assert.equal(will.boot, firstBoot);
  await waitFor('the controller to record offline', async () => (await controller.store.sites()).find((s) => s.site === SITE)?.state === 'offline', 20_000);

  const second = await start();
  const drained = await waitFor('every record at the controller', async () => {
    const n = await controller.store.count(SITE, 'records');
    return n === RECORDS ? n : undefined;
  }, 25_000, 50).catch(async (err: unknown) => {
    console.error('count', await controller.store.count(SITE, 'records'), controller.stats, atKill);
    console.error(second.logs().filter((l) => l['subsystem'] === 'sync' || l['subsystem'] === 'health').slice(-20).map((l) => JSON.stringify(l)).join('\n'));
    throw err;
  });
  assert.equal(drained, RECORDS);
  const rows = await controller.store.messages(SITE, 'records');
  assert.equal(rows.length, RECORDS);
  assert.deepEqual(rows.map((r) => r.seq), Array.from({ length: RECORDS }, (_, i) => i + 1));
  assert.equal(new Set(rows.map((r) => r.id)).size, RECORDS);
  assert.deepEqual(rows[123]?.data, { call_id: 'call-123', from: '1001', to: '1002', duration_s: 123 });

  // And the site's outbox empties: every record acknowledged.
  const status = await waitFor('an empty outbox', async () => {
    const s = (await controller.commandSite(SITE, 'status', {}, 5000)) as { state: string; outbox: { records: { count: number } } };
    return s.outbox.records.count === 0 ? s : undefined;
  }, 10_000, 100);
  assert.equal(status.state, 'online');
  // Resent messages (in flight at the kill) were deduplicated, not stored twice.
  const stats = controller.stats;
  assert.equal(stats.inserted, RECORDS);
  assert.ok(stats.received >= RECORDS);
  await second.stop();
  const bye = states[states.length - 1];
  assert.equal(bye?.state, 'offline');
});
