// Site sync against a real Mosquitto: a site (SiteSync over a real SQLite store, as
// the agent builds it) and the reference controller in this process, an observer
// client asserting the exact topics, payloads, QoS and retain flags, and branchctl
// run as a user runs it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { configFromData } from '../../agent/config/load.ts';
import { EventBus } from '../../agent/events/bus.ts';
import { createLogger, type Logger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { RemoteError } from '../../agent/sync/errors.ts';
import { encode, topics, type Request } from '../../agent/sync/protocol.ts';
import { SiteSync } from '../../agent/sync/site-sync.ts';
import { ControllerClient } from '../../controller/client.ts';
import { Controller } from '../../controller/service.ts';
import { REPO_ROOT } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/site-sync.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');

interface Seen {
  topic: string;
  payload: Record<string, unknown>;
  qos: number;
  retain: boolean;
}

function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger('debug', stream), lines };
}

interface Site {
  siteSync: SiteSync;
  bus: EventBus;
  lines: Array<Record<string, unknown>>;
  db: Database;
  stop(): Promise<void>;
}

async function startSite(url: string, id: string, extra: Record<string, unknown> = {}): Promise<Site> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-sync-site-'));
  const config = configFromData({ site: { id }, state_dir: dir, sip: { domain: 'x.test' }, extensions: [], mqtt: { url }, health: { telemetry_period: 3600 }, ...extra }, path.join(dir, 'c.yaml'));
  const db = await Database.open(path.join(dir, 'store.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  const { logger, lines } = capture();
  const bus = new EventBus(logger);
  const siteSync = new SiteSync({ config, logger, bus, db, committer, sources: { registrations: () => 7 } });
  await siteSync.start();
  return {
    siteSync,
    bus,
    lines,
    db,
    stop: async () => {
      await siteSync.stop();
      await committer.idle();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function branchctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BRANCHCTL, ...args], { cwd: REPO_ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('site sync with the controller over Mosquitto', () => {
  let broker: MosquittoHandle;
  let controller: Controller;
  let controllerDir: string;
  let site: Site;
  let observer: MqttClient;
  const seen: Seen[] = [];

  before(async () => {
    broker = await startMosquitto();
    controllerDir = mkdtempSync(path.join(tmpdir(), 'bl-sync-ctl-'));
    controller = new Controller({ broker: broker.url, stateDir: controllerDir, id: 'ctl-test', logger: createLogger('silent') });
    await controller.start();
    observer = await mqtt.connectAsync(broker.url, { clientId: 'observer', protocolVersion: 5 });
    observer.on('message', (topic, payload, packet) => {
      seen.push({ topic, payload: payload.length ? (JSON.parse(payload.toString()) as Record<string, unknown>) : {}, qos: packet.qos, retain: packet.retain });
    });
    // Retain As Published: live messages keep the retain flag their sender set.
    await observer.subscribeAsync('branchline/v1/#', { qos: 1, rap: true });
    site = await startSite(broker.url, 'site-a');
    await waitFor('the site to drain-ready', () => site.siteSync.sync?.controllerState === 'online');
  });

  after(async () => {
    await site?.stop();
    await controller?.stop();
    await observer?.endAsync();
    await broker?.cleanup();
    rmSync(controllerDir, { recursive: true, force: true });
  });

  test('the site publishes its retained birth and the controller its retained state', async () => {
    const birth = await waitFor('the birth', () => seen.find((s) => s.topic === 'branchline/v1/site/site-a/state' && s.payload['state'] === 'online'));
    assert.equal(birth.qos, 1);
    assert.equal(birth.retain, true);
    assert.deepEqual(
      { ...birth.payload, id: 'ID', ts: 'TS', since: 'SINCE', seq: 'SEQ' },
      { v: 1, id: 'ID', stream: 'state', seq: 'SEQ', boot: site.siteSync.sync?.boot, ts: 'TS', site: 'site-a', state: 'online', agent: '0.1.0', config_version: 0, since: 'SINCE' },
    );
    // A late subscriber gets both states from the broker's retained store.
    const late = await mqtt.connectAsync(broker.url, { clientId: 'late', protocolVersion: 4 });
    const retained: Seen[] = [];
    late.on('message', (topic, payload, packet) => retained.push({ topic, payload: JSON.parse(payload.toString()) as Record<string, unknown>, qos: packet.qos, retain: packet.retain }));
    await late.subscribeAsync(['branchline/v1/site/site-a/state', 'branchline/v1/controller/state'], { qos: 1 });
    await waitFor('retained states', () => retained.length >= 2);
    await late.endAsync();
    const siteState = retained.find((r) => r.topic === 'branchline/v1/site/site-a/state');
    const ctlState = retained.find((r) => r.topic === 'branchline/v1/controller/state');
    assert.equal(siteState?.retain, true);
    assert.equal(siteState?.payload['state'], 'online');
    assert.equal(ctlState?.retain, true);
    assert.equal(ctlState?.payload['controller'], 'ctl-test');
    assert.equal(ctlState?.payload['state'], 'online');
  });

  test('queued events are committed by the controller, acked, and leave the outbox', async () => {
    const sync = site.siteSync.sync!;
    for (let i = 0; i < 50; i++) await sync.enqueue({ stream: 'events', type: 'test.event', data: { i } });
    await waitFor('the outbox to empty', async () => (await sync.depth()).events.count === 0);
    await waitFor('50 events at the controller', async () => (await controller.store.count('site-a', 'events')) === 50 || undefined);
    const stored = await controller.store.messages('site-a', 'events');
    assert.deepEqual(stored.filter((m) => m.type === 'test.event').map((m) => (m.data as { i: number }).i), [...Array(50).keys()]);
    const ups = seen.filter((s) => s.topic === 'branchline/v1/site/site-a/up/events');
    assert.ok(ups.length >= 50);
    assert.ok(ups.every((u) => u.qos === 1 && !u.retain));
    const first = ups.find((u) => (u.payload['data'] as { i?: number }).i === 0);
    assert.deepEqual(Object.keys(first?.payload ?? {}).sort(), ['boot', 'data', 'id', 'seq', 'site', 'stream', 'ts', 'type', 'v']);
    const acks = seen.filter((s) => s.topic === 'branchline/v1/site/site-a/ack');
    assert.ok(acks.length >= 1);
    assert.ok(acks.every((a) => a.qos === 1 && !a.retain && a.payload['stream'] === 'ack'));
    const ackedIds = new Set(acks.flatMap((a) => a.payload['ids'] as string[]));
    for (const u of ups) assert.ok(ackedIds.has(u.payload['id'] as string));
  });

  test("the agent's bus events travel on the events stream", async () => {
    site.bus.emit('registration.added', { extension: '1001', contact: 'sip:1001@10.0.0.9', expiresAt: 123, source: 'udp:10.0.0.9:5060' });
    site.bus.emit('security.scanner', { source: '203.0.113.5', userAgent: 'friendly-scanner' });
    const rows = await waitFor('forwarded events', async () => {
      const r = (await controller.store.messages('site-a', 'events')).filter((m) => m.type !== 'test.event');
      return r.length === 2 ? r : undefined;
    });
    assert.deepEqual(
      rows.map((r) => [r.type, r.data]),
      [
        ['registration.added', { extension: '1001', contact: 'sip:1001@10.0.0.9', expiresAt: 123, source: 'udp:10.0.0.9:5060' }],
        ['security.scanner', { source: '203.0.113.5', userAgent: 'friendly-scanner' }],
      ],
    );
  });

  test('desired config: applied when newer, version conflicts refused, older versions ignored', async () => {
    const applied: number[] = [];
    site.bus.on('sync.config', ({ version }) => applied.push(version));
    assert.deepEqual(await controller.pushConfig('site-a', { routes: { pstn: 'line-card' } }), { site: 'site-a', version: 1 });
    const desired = await waitFor('retained desired config', () => seen.find((s) => s.topic === 'branchline/v1/site/site-a/config/desired'));
    assert.equal(desired.retain, true);
    assert.equal(desired.qos, 1);
    assert.equal(desired.payload['version'], 1);
    assert.deepEqual(desired.payload['config'], { routes: { pstn: 'line-card' } });
    const reported = await waitFor('reported v1', () => seen.find((s) => s.topic === 'branchline/v1/site/site-a/config/reported' && s.payload['version'] === 1));
    assert.equal(reported.retain, true);
    assert.equal(reported.payload['status'], 'applied');
    assert.deepEqual(applied, [1]);
    assert.equal(site.siteSync.sync?.configVersion, 1);

    // Optimistic concurrency: a push based on a stale version is refused.
    await assert.rejects(controller.pushConfig('site-a', { x: 1 }, 0), (err: Error & { code?: string }) => err.code === 'EVERSION');
    assert.equal((await controller.pushConfig('site-a', { x: 2 }, 1)).version, 2);
    await waitFor('site at v2', () => site.siteSync.sync?.configVersion === 2);

    // A stale desired config (v1 again, as after a controller restore) is not applied.
    const stale = { v: 1, id: 'stale-1', stream: 'config', seq: 1, boot: 'someone', ts: Date.now(), site: 'site-a', version: 1, config: { x: 'old' } };
    await observer.publishAsync(topics.desiredConfig('site-a'), encode(stale), { qos: 1, retain: true });
    const ignored = await waitFor('ignored report', () => seen.find((s) => s.topic === 'branchline/v1/site/site-a/config/reported' && s.payload['status'] === 'ignored'));
    assert.equal(ignored.payload['version'], 2);
    assert.equal(ignored.payload['desired_version'], 1);
    assert.equal(site.siteSync.sync?.configVersion, 2);
    assert.deepEqual(applied, [1, 2]);
    await waitFor('controller sees v2', async () => (await controller.store.sites()).find((s) => s.site === 'site-a')?.config_version === 2);
    // Clean the retained stale copy so it does not outlive the test.
    await observer.publishAsync(topics.desiredConfig('site-a'), Buffer.alloc(0), { qos: 1, retain: true });
  });

  test('commands round-trip; unknown ones fail with a code; a repeated id runs once', async () => {
    const pong = (await controller.commandSite('site-a', 'ping', {}, 5000)) as { site: string; boot: string };
    assert.equal(pong.site, 'site-a');
    assert.equal(pong.boot, site.siteSync.sync?.boot);
    await assert.rejects(controller.commandSite('site-a', 'reboot-now', {}, 5000), (err: unknown) => err instanceof RemoteError && err.code === 'EUNKNOWNCOMMAND');

    const responses: Seen[] = [];
    const client = await mqtt.connectAsync(broker.url, { clientId: 'cmd-client', protocolVersion: 5 });
    client.on('message', (topic, payload, packet) => responses.push({ topic, payload: JSON.parse(payload.toString()) as Record<string, unknown>, qos: packet.qos, retain: packet.retain }));
    await client.subscribeAsync('test/replies', { qos: 1 });
    const req: Request = { v: 1, id: 'cmd-42', stream: 'cmd', seq: 1, boot: 'tester', ts: Date.now(), name: 'telemetry.now', args: {}, response_topic: 'ignored/by/props', correlation: 'ignored' };
    const props = { properties: { responseTopic: 'test/replies', correlationData: Buffer.from('corr-1') } };
    await client.publishAsync(topics.siteCommand('site-a'), encode(req), { qos: 1, ...props });
    await waitFor('first response', () => responses.length === 1);
    await client.publishAsync(topics.siteCommand('site-a'), encode(req), { qos: 1, ...props });
    await waitFor('second response', () => responses.length === 2);
    await client.endAsync();
    assert.deepEqual(responses[0], responses[1]); // the same stored answer, byte for byte
    assert.equal(responses[0]?.qos, 1);
    assert.equal(responses[0]?.retain, false);
    assert.equal(responses[0]?.payload['status'], 'ok');
    assert.equal(responses[0]?.payload['request_id'], 'cmd-42');
    assert.equal(responses[0]?.payload['correlation'], 'corr-1');
    assert.deepEqual(responses[0]?.payload['data'], { queued: true });
    assert.equal(site.lines.filter((l) => l['event'] === 'sync.command' && l['id'] === 'cmd-42').length, 1);

    // That telemetry sample reached the controller.
    const tel = (await waitFor('telemetry at the controller', () => controller.store.telemetry('site-a'))) as { system: { cpu: { cores: number } }; agent: { registrations: number; wan: unknown }; mode: string };
    assert.ok(tel.system.cpu.cores >= 1);
    assert.equal(tel.agent.registrations, 7);
    assert.equal(tel.mode, 'normal');
    assert.deepEqual(tel.agent.wan, { link: 'up', controller: 'online', probes: 'ok' });
  });

  test('branchctl sites and records ask the running controller', async () => {
    const sync = site.siteSync.sync!;
    for (let i = 0; i < 3; i++) await sync.enqueue({ stream: 'records', type: 'call.record', data: { call: `c${i}` } });
    await waitFor('records committed', async () => (await controller.store.count('site-a', 'records')) === 3 || undefined);

    const sites = await branchctl(['sites', '--broker', broker.url, '--json']);
    assert.equal(sites.code, 0, sites.stderr);
    const list = JSON.parse(sites.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      list.map((s) => ({ site: s['site'], state: s['state'], config_version: s['config_version'], records: s['records'] })),
      [{ site: 'site-a', state: 'online', config_version: 2, records: 3 }],
    );
    const records = await branchctl(['records', '--broker', broker.url, '--site', 'site-a', '--json']);
    assert.equal(records.code, 0, records.stderr);
    const rows = JSON.parse(records.stdout) as Array<{ seq: number; type: string; data: unknown; site: string }>;
    assert.deepEqual(rows.map((r) => [r.seq, r.type, r.data, r.site]), [0, 1, 2].map((i) => [i + 1, 'call.record', { call: `c${i}` }, 'site-a']));
    // A negative limit would mean "no limit" to SQLite: refused with a code instead.
    const client = new ControllerClient({ broker: broker.url, logger: createLogger('silent') });
    await client.connect();
    try {
      await assert.rejects(client.request('records.list', { site: 'site-a', limit: -1 }), { code: 'EBADARGS' });
      assert.equal((await client.request('records.list', { site: 'site-a', limit: 2, after_seq: 1 })).length, 2);
    } finally {
      await client.close();
    }

    const human = await branchctl(['sites', '--broker', broker.url]);
    assert.match(human.stdout, /^SITE\s+STATE\s+CONFIG\s+DESIRED\s+RECORDS/m);
    assert.match(human.stdout, /^site-a\s+online\s+2\s+2\s+3\s/m);

    const cfgFile = path.join(controllerDir, 'cfg.yaml');
    writeFileSync(cfgFile, 'routes:\n  pstn: central\n');
    const conflict = await branchctl(['push-config', '--broker', broker.url, '--site', 'site-a', '--file', cfgFile, '--base-version', '1']);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /EVERSION/);
    const pushed = await branchctl(['push-config', '--broker', broker.url, '--site', 'site-a', '--file', cfgFile, '--base-version', '2', '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.deepEqual(JSON.parse(pushed.stdout), { site: 'site-a', version: 3 });
    const status = await branchctl(['command', '--broker', broker.url, '--site', 'site-a', '--name', 'status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as { state: string; mode: string; config_version: number };
    assert.equal(st.state, 'online');
    assert.equal(st.mode, 'normal');
    assert.equal(st.config_version, 3);
  });

  test('branchctl says plainly when no controller answers', async () => {
    const other = await startMosquitto();
    try {
      const r = await branchctl(['sites', '--broker', other.url, '--json', '--timeout', '1']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no answer from a controller .*\(is `branchctl serve` running\?\)/);
      assert.match(r.stderr, /ETIMEOUT/);
      const usage = await branchctl(['records', '--broker', other.url]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /missing --site/);
    } finally {
      await other.cleanup();
    }
  });
});
