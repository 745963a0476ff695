// Outbox drain after restore: N call records queued in a site's SQLite outbox while
// the WAN was down, then the controller comes back; how long until every record is
// committed at the controller and acknowledged? Beside it, Mosquitto's own QoS 1
// publish rate on this machine in the same run, with the same window (messages in
// flight), as the ceiling. Prints figures; never passes or fails on time.
//
//   node bench/outbox-drain.ts [--records 10000] [--window 100] [--bytes 300]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { configFromData } from '../agent/config/load.ts';
import { EventBus } from '../agent/events/bus.ts';
import { createLogger } from '../agent/log/logger.ts';
import { Database } from '../agent/store/db.ts';
import { GroupCommitter } from '../agent/store/group-commit.ts';
import { migrate } from '../agent/store/migrations.ts';
import { SiteSync } from '../agent/sync/site-sync.ts';
import { REPO_ROOT } from '../test/helpers/agent.ts';
import { startMosquitto } from '../test/helpers/mosquitto.ts';
import { stopProcess, track } from '../test/helpers/proc.ts';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '10000' },
    window: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '300' },
  },
});
const RECORDS = Number(values.records);
const WINDOW = Number(values.window);
const BYTES = Number(values.bytes);

function recordData(i: number): unknown {
  // A call record of about BYTES bytes once wrapped in the envelope.
  return { call_id: `call-${i}`, from: '1001', to: '+15550100', direction: 'outbound', route: 'line-card', pad: 'x'.repeat(Math.max(0, BYTES - 230)) };
}

/** Raw MQTT.js → Mosquitto → MQTT.js, QoS 1, at most `window` publishes awaiting PUBACK. */
async function rawRate(url: string, count: number, window: number): Promise<number> {
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-sub', protocolVersion: 5 });
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-pub', protocolVersion: 5 });
  await sub.subscribeAsync('bench/raw', { qos: 1 });
  const payload = Buffer.alloc(BYTES, 'x');
  let received = 0;
  const allIn = new Promise<void>((resolve) => {
    sub.on('message', () => {
      if (++received === count) resolve();
    });
  });
  const t0 = performance.now();
  let sent = 0;
  let inflight = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (inflight < window && sent < count) {
        sent++;
        inflight++;
        pub.publish('bench/raw', payload, { qos: 1 }, () => {
          inflight--;
          if (sent < count) pump();
          else if (inflight === 0) resolve();
        });
      }
    };
    pump();
  });
  await allIn;
  const ms = performance.now() - t0;
  await pub.endAsync();
  await sub.endAsync();
  return (count / ms) * 1000;
}

async function seed(db: Database, count: number): Promise<void> {
  const statements = [];
  for (let start = 0; start < count; start += 400) {
    const n = Math.min(400, count - start);
    const params = [];
    for (let i = start; i < start + n; i++) {
      const data = JSON.stringify(recordData(i));
      params.push(crypto.randomUUID(), 'records', i + 1, 'call.record', 'bench-boot', Date.now(), data, Buffer.byteLength(data));
    }
    statements.push({ sql: `INSERT INTO sync_outbox (msg_id, stream, seq, type, boot, ts, data, bytes) VALUES ${Array(n).fill('(?,?,?,?,?,?,?,?)').join(',')}`, params });
  }
  statements.push({ sql: 'INSERT INTO sync_streams (stream, seq) VALUES (?, ?)', params: ['records', count] });
  await db.transaction(statements);
}

async function main(): Promise<void> {
  const broker = await startMosquitto();
  const siteDir = mkdtempSync(path.join(tmpdir(), 'bl-bench-site-'));
  const ctlDir = mkdtempSync(path.join(tmpdir(), 'bl-bench-ctl-'));
  try {
    // The ceiling, measured first and again last: the machine's mood changes.
    await rawRate(broker.url, 2000, WINDOW); // warm-up
    const rawBefore = await rawRate(broker.url, RECORDS, WINDOW);

    const db = await Database.open(path.join(siteDir, 'store.sqlite'));
    await migrate(db);
    await seed(db, RECORDS);
    const committer = new GroupCommitter(db);
    const logger = createLogger('warn');
    const config = configFromData(
      { site: { id: 'bench-site' }, state_dir: siteDir, sip: { domain: 'b.test' }, extensions: [], mqtt: { url: broker.url }, sync: { window: WINDOW }, health: { telemetry_period: 3600 } },
      path.join(siteDir, 'c.yaml'),
    );
    const siteSync = new SiteSync({ config, logger, bus: new EventBus(logger), db, committer });
    await siteSync.start();
    const sync = siteSync.sync!;

    // "Restore": the controller (a real `branchctl serve` process) comes up.
    const ctl = spawn(process.execPath, [path.join(REPO_ROOT, 'controller', 'cli.ts'), 'serve', '--broker', broker.url, '--state', ctlDir, '--log-level', 'warn'], { stdio: 'ignore' });
    track(ctl);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (sync.controllerState === 'online') {
          clearInterval(check);
          resolve();
        }
      }, 1);
    });
    const t0 = performance.now();
    // Polls the drainer's in-memory counter: a COUNT over the outbox every few ms
    // would compete with the drain for the store's one connection.
    while (sync.drainStats.acked < RECORDS) await new Promise((r) => setTimeout(r, 2));
    const ms = performance.now() - t0;
    const left = (await sync.depth()).records.count;
    const stats = sync.drainStats;
    await siteSync.stop();
    await committer.idle();
    await db.close();

    // Every record committed at the controller, once: ask it as a user would.
    const count = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(REPO_ROOT, 'controller', 'cli.ts'), 'sites', '--broker', broker.url, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`branchctl sites exited ${code}`))));
    });
    const records = (JSON.parse(count) as Array<{ site: string; records: number }>).find((s) => s.site === 'bench-site')?.records;
    await stopProcess(ctl);

    const rawAfter = await rawRate(broker.url, RECORDS, WINDOW);
    const raw = (rawBefore + rawAfter) / 2;
    const rate = (RECORDS / ms) * 1000;
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`outbox drain after restore: ${fmt(RECORDS)} call records (~${BYTES} B), window ${WINDOW}`);
    console.log(`  drained and committed at the controller in ${(ms / 1000).toFixed(2)} s: ${fmt(rate)} records/s`);
    console.log(`  sent ${fmt(stats.sent)}, resent ${fmt(stats.resent)}, acked ${fmt(stats.acked)}; controller counts ${records} records`);
    console.log(`  Mosquitto QoS 1 raw publish→subscriber, same window: ${fmt(rawBefore)} / ${fmt(rawAfter)} msg/s (before/after)`);
    console.log(`  ratio drain / raw: ${(rate / raw).toFixed(2)} (target ≥ 0.30)`);
    if (left !== 0) console.log(`  WARNING: ${left} records still in the outbox`);
    if (records !== RECORDS) {
      console.log(`  WARNING: the controller holds ${records} records, expected ${RECORDS}`);
      process.exitCode = 1;
    }
  } finally {
    await broker.cleanup();
    rmSync(siteDir, { recursive: true, force: true });
    rmSync(ctlDir, { recursive: true, force: true });
  }
}

await main();
