// Outbox drain after restore: N call records queued in a site's SQLite outbox while
// the WAN was down, then the controller comes back; how long until every record is
// committed at the controller and acknowledged? Beside it, Mosquitto's own QoS 1
// publish rate on this machine in the same run, with the same window (messages in
// flight), as the ceiling. Prints figures; never passes or fails on time.
//
// Beside the call records, `--voicemails` messages on the `voicemail` stream, each
// carrying a recording of `--voicemail-seconds` (8 kHz µ-law WAV, base64 in the
// JSON). The raw ceiling sends the same mix: the same count and size of payloads on
// two topics, each with its own window, as the drainer has one per stream.
//
//   node bench/outbox-drain.ts [--records 10000] [--voicemails 50] [--voicemail-seconds 20]
//     [--window 100] [--bytes 300] [--controller-node-flags "--cpu-prof --cpu-prof-dir=/tmp/p"]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
    voicemails: { type: 'string', default: '50' },
    'voicemail-seconds': { type: 'string', default: '20' },
    'controller-node-flags': { type: 'string', default: '' },
  },
});
const RECORDS = Number(values.records);
const WINDOW = Number(values.window);
const BYTES = Number(values.bytes);
const VOICEMAILS = Number(values.voicemails);
const VM_SECONDS = Number(values['voicemail-seconds']);
const CTL_FLAGS = values['controller-node-flags'].split(' ').filter((f) => f !== '');

/** One recording: a 44-byte WAV header and 8,000 µ-law bytes a second (silence with a little noise). */
const AUDIO_B64 = (() => {
  const body = Buffer.alloc(VM_SECONDS * 8000);
  for (let i = 0; i < body.length; i++) body[i] = 0xff ^ ((i * 7919) & 0x0f);
  return Buffer.concat([Buffer.alloc(44), body]).toString('base64');
})();

function voicemailData(i: number): unknown {
  return { id: `vm-${i}`, mailbox: '1001', caller: '+15550147', caller_name: null, reason: 'no-answer', received_at: Date.now(), duration_ms: VM_SECONDS * 1000, audio: AUDIO_B64 };
}

/** The up message's size once wrapped in the envelope (the header is ~230 bytes). */
const VM_BYTES = Buffer.byteLength(JSON.stringify(voicemailData(0))) + 230;

function recordData(i: number): unknown {
  // A call record of about BYTES bytes once wrapped in the envelope.
  return { call_id: `call-${i}`, from: '1001', to: '+15550100', direction: 'outbound', route: 'line-card', pad: 'x'.repeat(Math.max(0, BYTES - 230)) };
}

/**
 * Raw MQTT.js → Mosquitto → MQTT.js, QoS 1: `counts[k]` payloads of `sizes[k]` bytes on
 * topic k, each topic with at most `window` publishes awaiting PUBACK (the drainer's
 * window is per stream), all on one publishing connection, as the site has one.
 */
async function rawRate(url: string, counts: number[], sizes: number[], window: number): Promise<number> {
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-sub', protocolVersion: 5 });
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-pub', protocolVersion: 5 });
  await sub.subscribeAsync('bench/raw/#', { qos: 1 });
  const total = counts.reduce((a, b) => a + b, 0);
  let received = 0;
  const allIn = new Promise<void>((resolve) => {
    sub.on('message', () => {
      if (++received === total) resolve();
    });
  });
  const t0 = performance.now();
  await Promise.all(
    counts.map(
      (count, k) =>
        new Promise<void>((resolve) => {
          if (count === 0) return resolve();
          const payload = Buffer.alloc(sizes[k] as number, 'x');
          const topic = `bench/raw/${k}`;
          let sent = 0;
          let inflight = 0;
          const pump = () => {
            while (inflight < window && sent < count) {
              sent++;
              inflight++;
              pub.publish(topic, payload, { qos: 1 }, () => {
                inflight--;
                if (sent < count) pump();
                else if (inflight === 0) resolve();
              });
            }
          };
          pump();
        }),
    ),
  );
  await allIn;
  const ms = performance.now() - t0;
  await pub.endAsync();
  await sub.endAsync();
  return (total / ms) * 1000;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return NaN;
  }
}

async function seed(db: Database, stream: string, type: string, count: number, make: (i: number) => unknown): Promise<void> {
  if (count === 0) return;
  const statements = [];
  const per = stream === 'records' ? 400 : 5;
  for (let start = 0; start < count; start += per) {
    const n = Math.min(per, count - start);
    const params = [];
    for (let i = start; i < start + n; i++) {
      const data = JSON.stringify(make(i));
      params.push(crypto.randomUUID(), stream, i + 1, type, 'bench-boot', Date.now(), data, Buffer.byteLength(data));
    }
    statements.push({ sql: `INSERT INTO sync_outbox (msg_id, stream, seq, type, boot, ts, data, bytes) VALUES ${Array(n).fill('(?,?,?,?,?,?,?,?)').join(',')}`, params });
  }
  statements.push({ sql: 'INSERT INTO sync_streams (stream, seq) VALUES (?, ?)', params: [stream, count] });
  await db.transaction(statements);
}

async function main(): Promise<void> {
  const broker = await startMosquitto();
  const siteDir = mkdtempSync(path.join(tmpdir(), 'bl-bench-site-'));
  const ctlDir = mkdtempSync(path.join(tmpdir(), 'bl-bench-ctl-'));
  try {
    // The ceiling, measured first and again last: the machine's mood changes.
    const counts = [RECORDS, VOICEMAILS];
    const sizes = [BYTES, VM_BYTES];
    const TOTAL = RECORDS + VOICEMAILS;
    await rawRate(broker.url, [2000, 0], sizes, WINDOW); // warm-up
    const rawBefore = await rawRate(broker.url, counts, sizes, WINDOW);

    const db = await Database.open(path.join(siteDir, 'store.sqlite'));
    await migrate(db);
    await seed(db, 'records', 'call.record', RECORDS, recordData);
    await seed(db, 'voicemail', 'voicemail.message', VOICEMAILS, voicemailData);
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
    const ctl = spawn(process.execPath, [...CTL_FLAGS, path.join(REPO_ROOT, 'controller', 'cli.ts'), 'serve', '--broker', broker.url, '--state', ctlDir, '--log-level', 'warn'], { stdio: 'ignore' });
    track(ctl);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (sync.controllerState === 'online') {
          clearInterval(check);
          resolve();
        }
      }, 1);
    });
    const cpu0 = [cpuSeconds(process.pid), cpuSeconds(ctl.pid), cpuSeconds(broker.pid())];
    const t0 = performance.now();
    // Polls the drainer's in-memory counter: a COUNT over the outbox every few ms
    // would compete with the drain for the store's one connection.
    while (sync.drainStats.acked < TOTAL) await new Promise((r) => setTimeout(r, 2));
    const ms = performance.now() - t0;
    const cpu1 = [cpuSeconds(process.pid), cpuSeconds(ctl.pid), cpuSeconds(broker.pid())];
    const cpuPct = cpu1.map((c, i) => Math.round(((c - (cpu0[i] as number)) / (ms / 1000)) * 100));
    const stats = sync.drainStats;
    // Acked rows are deleted from the outbox in batches (Drainer ackDelayMs): count
    // what is left once stop() has written every ack received.
    await siteSync.stop();
    await committer.idle();
    const left = (await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM sync_outbox'))?.n ?? 0;
    await db.close();

    // Every record committed at the controller, once: ask it as a user would.
    const count = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(REPO_ROOT, 'controller', 'cli.ts'), 'sites', '--broker', broker.url, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`branchctl sites exited ${code}`))));
    });
    const records = (JSON.parse(count) as Array<{ site: string; records: number }>).find((s) => s.site === 'bench-site')?.records;
    // Voicemails: ask the controller's store directly (branchctl lists call records only).
    await stopProcess(ctl);
    const ctlDb = await Database.open(path.join(ctlDir, 'controller.sqlite'), { readonly: true });
    const vmRow = await ctlDb.get<{ n: number; bad: number }>(
      "SELECT COUNT(*) AS n, SUM(json_extract(data, '$.audio') IS NOT ?) AS bad FROM messages WHERE site = 'bench-site' AND stream = 'voicemail'",
      [AUDIO_B64],
    );
    await ctlDb.close();
    const voicemails = vmRow?.n ?? 0;

    const rawAfter = await rawRate(broker.url, counts, sizes, WINDOW);
    const raw = (rawBefore + rawAfter) / 2;
    const rate = (TOTAL / ms) * 1000;
    const mb = (RECORDS * BYTES + VOICEMAILS * VM_BYTES) / 1e6;
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`outbox drain after restore: ${fmt(RECORDS)} call records (~${BYTES} B) and ${VOICEMAILS} voicemails (${VM_SECONDS} s, ~${fmt(VM_BYTES / 1000)} kB each), ${mb.toFixed(1)} MB, window ${WINDOW}`);
    console.log(`  drained and committed at the controller in ${(ms / 1000).toFixed(2)} s: ${fmt(rate)} messages/s (${(mb / (ms / 1000)).toFixed(1)} MB/s)`);
    console.log(`  CPU during the drain (% of one core): site ${cpuPct[0]}, controller ${cpuPct[1]}, Mosquitto ${cpuPct[2]}`);
    console.log(`  sent ${fmt(stats.sent)}, resent ${fmt(stats.resent)}, acked ${fmt(stats.acked)}; controller counts ${records} records, ${voicemails} voicemails (${vmRow?.bad ?? 0} with other audio)`);
    console.log(`  Mosquitto QoS 1 raw publish→subscriber, same window: ${fmt(rawBefore)} / ${fmt(rawAfter)} msg/s (before/after)`);
    console.log(`  ratio drain / raw: ${(rate / raw).toFixed(2)} (target ≥ 0.30)`);
    if (left !== 0) console.log(`  WARNING: ${left} records still in the outbox`);
    if (records !== RECORDS || voicemails !== VOICEMAILS || (vmRow?.bad ?? 0) > 0) {
      console.log(`  WARNING: the controller holds ${records} records and ${voicemails} voicemails, expected ${RECORDS} and ${VOICEMAILS}`);
      process.exitCode = 1;
    }
  } finally {
    await broker.cleanup();
    rmSync(siteDir, { recursive: true, force: true });
    rmSync(ctlDir, { recursive: true, force: true });
  }
}

await main();
