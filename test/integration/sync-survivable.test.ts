// Survivable mode against a real Mosquitto: the "WAN" is cut by killing the broker
// (and, separately, by the controller going away); the site enters survivable mode
// within seconds, holds what it must send, shows `survivable` to the controller once
// it is back, delivers everything, and returns to normal only after the WAN has been
// stable for return_after. Also: with no mqtt.url the agent runs its own broker.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { configFromData } from '../../agent/config/load.ts';
import { EventBus } from '../../agent/events/bus.ts';
import { createLogger, type Logger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { SiteSync } from '../../agent/sync/site-sync.ts';
import { Controller } from '../../controller/service.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/site-sync.ts';

function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger('info', stream), lines };
}

async function startSite(id: string, settings: Record<string, unknown>) {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-surv-'));
  const config = configFromData({ site: { id }, state_dir: dir, sip: { domain: 'x.test' }, extensions: [], ...settings }, path.join(dir, 'c.yaml'));
  const db = await Database.open(path.join(dir, 'store.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  const { logger, lines } = capture();
  const bus = new EventBus(logger);
  const modes: Array<{ mode: string; reason: string; at: number }> = [];
  bus.on('health.mode', (m) => modes.push({ mode: m.mode, reason: m.reason, at: Date.now() }));
  const siteSync = new SiteSync({ config, logger, bus, db, committer });
  await siteSync.start();
  return {
    siteSync,
    lines,
    modes,
    stop: async () => {
      await siteSync.stop();
      await committer.idle();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('survivable mode', () => {
  let broker: MosquittoHandle;
  let ctlDir: string;
  let controller: Controller;

  before(async () => {
    broker = await startMosquitto();
    ctlDir = mkdtempSync(path.join(tmpdir(), 'bl-surv-ctl-'));
    controller = new Controller({ broker: broker.url, stateDir: ctlDir, id: 'ctl-surv', logger: createLogger('silent') });
    await controller.start();
  });

  after(async () => {
    await controller?.stop();
    await broker?.cleanup();
    rmSync(ctlDir, { recursive: true, force: true });
  });

  test('WAN cut: survivable within seconds, records held, delivered once, normal after the hold-down', async () => {
    const site = await startSite('site-s', {
      mqtt: { url: broker.url, reconnect_period: 0.2, keepalive: 5 },
      health: { enter_after: 0.5, return_after: 2, probe_interval: 0.2, probe_timeout: 0.3, telemetry_period: 3600 },
    });
    try {
      const sync = site.siteSync.sync!;
      const health = site.siteSync.health!;
      await waitFor('controller online at the site', () => sync.controllerState === 'online');
      assert.equal(health.mode, 'normal');

      const cut = Date.now();
      broker.kill();
      await waitFor('survivable mode', () => health.mode === 'survivable');
      const detectMs = Date.now() - cut;
      assert.ok(detectMs < 2000, `entered survivable mode after ${detectMs} ms`);
      const entered = site.modes.find((m) => m.mode === 'survivable');
      // Whichever saw it first: the link's close or a failed probe.
      assert.match(entered?.reason ?? '', /^(MQTT link down|WAN probes failing)$/);
      const logLine = site.lines.find((l) => l['event'] === 'health.mode' && l['mode'] === 'survivable');
      assert.equal(logLine?.['level'], 40); // warn: one line tells an operator what happened
      assert.equal(health.wanUp, false);

      // While the WAN is down, records queue locally (nothing fails).
      for (let i = 0; i < 20; i++) await sync.enqueue({ stream: 'records', type: 'call.record', data: { call: i } });
      assert.equal((await sync.depth()).records.count, 20);

      // WAN back: the link returns, the site says `survivable` until it has been stable.
      await broker.start();
      await waitFor('link back', () => sync.linkUp && sync.controllerState === 'online');
      const back = Date.now();
      await waitFor('survivable at the controller', async () => (await controller.store.sites()).find((s) => s.site === 'site-s')?.state === 'survivable' || undefined);
      await waitFor('records delivered', async () => (await controller.store.count('site-s', 'records')) === 20 || undefined);
      await waitFor('acks to empty the outbox', async () => (await sync.depth()).records.count === 0 || undefined);
      assert.equal(health.mode, 'survivable', 'the records drain before the hold-down ends');

      await waitFor('normal mode', () => health.mode === 'normal', 6000);
      assert.ok(Date.now() - back >= 1900, 'returned only after return_after');
      await waitFor('online at the controller', async () => (await controller.store.sites()).find((s) => s.site === 'site-s')?.state === 'online' || undefined);
      const rows = await controller.store.messages('site-s', 'records');
      assert.deepEqual(rows.map((r) => (r.data as { call: number }).call), [...Array(20).keys()]);
      const telemetryMode = (await waitFor('telemetry', async () => {
        await site.siteSync.health?.telemetryNow();
        return (await controller.store.telemetry('site-s')) as { mode: string } | null ?? undefined;
      })).mode;
      assert.equal(telemetryMode, 'normal');
    } finally {
      await site.stop();
    }
  });

  test('the controller going away is WAN trouble too', async () => {
    const site = await startSite('site-c', {
      mqtt: { url: broker.url, reconnect_period: 0.2 },
      health: { enter_after: 0.3, return_after: 0.5, telemetry_period: 3600 },
    });
    try {
      const health = site.siteSync.health!;
      await waitFor('controller online', () => site.siteSync.sync?.controllerState === 'online');
      await controller.stop(); // publishes the retained `offline` controller state
      await waitFor('survivable', () => health.mode === 'survivable');
      assert.equal(site.modes.find((m) => m.mode === 'survivable')?.reason, 'controller offline');
      controller = new Controller({ broker: broker.url, stateDir: ctlDir, id: 'ctl-surv', logger: createLogger('silent') });
      await controller.start();
      await waitFor('normal', () => health.mode === 'normal');
    } finally {
      await site.stop();
    }
  });

  test('with no mqtt.url the agent runs the embedded broker and works through it', async () => {
    const port = await freeUdpTcpPort();
    const site = await startSite('site-e', { mqtt: { embedded: { listen: `127.0.0.1:${port}` } }, health: { telemetry_period: 3600 } });
    const ctlDir2 = mkdtempSync(path.join(tmpdir(), 'bl-emb-ctl-'));
    // Aedes speaks MQTT 3.1.1: so does everyone who talks to it.
    const local = new Controller({ broker: `mqtt://127.0.0.1:${port}`, stateDir: ctlDir2, protocolVersion: 4, logger: createLogger('silent') });
    try {
      assert.equal(site.siteSync.sync?.url, `mqtt://127.0.0.1:${port}`);
      assert.ok(site.lines.some((l) => l['event'] === 'mqtt.embedded_broker'));
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'emb-observer', protocolVersion: 4 });
      const got: Array<{ state: string; retain: boolean }> = [];
      client.on('message', (_t, payload, packet) => got.push({ state: (JSON.parse(payload.toString()) as { state: string }).state, retain: packet.retain }));
      await client.subscribeAsync('branchline/v1/site/site-e/state', { qos: 1 });
      await waitFor('retained birth from the embedded broker', () => got.find((g) => g.state === 'online' && g.retain));
      await client.endAsync();

      await local.start();
      await site.siteSync.sync!.enqueue({ stream: 'records', type: 'call.record', data: { call: 'e1' } });
      await waitFor('record at the local controller', async () => (await local.store.count('site-e', 'records')) === 1 || undefined);
    } finally {
      await local.stop();
      await site.stop();
      rmSync(ctlDir2, { recursive: true, force: true });
    }
  });
});
