// Controller ingest with many sites: N simulated sites (bench/lib/site-swarm.ts: one
// MQTT.js connection each, the site side of the protocol with an in-memory outbox,
// in this process) publish telemetry to `branchctl serve` over a real Mosquitto; the
// rate is messages committed and acknowledged per second, with one controller
// instance and with two sharing the subscription (`--share`, one SQLite store).
// Beside it, Mosquitto's own QoS 1 rate through the same connections (publish →
// one subscriber, the same payload, the same window), measured before and after in
// the same run. Prints figures; never passes or fails on time.
//
//   node bench/controller-ingest.ts [--sites 1000] [--per-site 10] [--window 10] [--instances 1,2]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { REPO_ROOT } from '../test/helpers/agent.ts';
import { startMosquitto } from '../test/helpers/mosquitto.ts';
import { stopProcess, track } from '../test/helpers/proc.ts';
import { CLK_TCK, procTicks } from './lib/process-usage.ts';
import { SiteSwarm, telemetryMessageBytes } from './lib/site-swarm.ts';

const { values } = parseArgs({
  options: {
    sites: { type: 'string', default: '1000' },
    'per-site': { type: 'string', default: '10' },
    window: { type: 'string', default: '10' },
    instances: { type: 'string', default: '1,2' },
  },
});
const SITES = Number(values.sites);
const PER_SITE = Number(values['per-site']);
const WINDOW = Number(values.window);
const INSTANCES = values.instances.split(',').map(Number);
if (![SITES, PER_SITE, WINDOW, ...INSTANCES].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('usage: node bench/controller-ingest.ts [--sites N] [--per-site N] [--window N] [--instances 1,2]');
  process.exit(2);
}
const TOTAL = SITES * PER_SITE;
const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');

interface Instance {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
}

function serve(url: string, stateDir: string, id: string, share: string | undefined): Promise<Instance> {
  const args = [BRANCHCTL, 'serve', '--broker', url, '--state', stateDir, '--id', id, ...(share ? ['--share', share] : [])];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  track(child);
  const inst: Instance = { child, lines: [] };
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    partial += d;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      // Only the lines we read: the per-site state lines would cost memory for nothing.
      if (text.includes('"controller.ready"') || text.includes('"controller.stopped"')) inst.lines.push(JSON.parse(text) as Record<string, unknown>);
    }
  });
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const check = setInterval(() => {
      if (inst.lines.some((l) => l['event'] === 'controller.ready')) {
        clearInterval(check);
        resolve(inst);
      } else if (Date.now() > deadline || child.exitCode !== null) {
        clearInterval(check);
        reject(new Error(`${id} did not become ready`));
      }
    }, 20);
  });
}

/** The swarm's connections publish `perSite` QoS 1 messages each to a plain topic; one subscriber counts them. */
async function rawRate(url: string, swarm: SiteSwarm, perSite: number, payload: Buffer): Promise<number> {
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-raw-sub', protocolVersion: 5 });
  await sub.subscribeAsync('bench/raw/#', { qos: 1 });
  const total = swarm.clients.length * perSite;
  let received = 0;
  const allIn = new Promise<void>((resolve) => sub.on('message', () => ++received === total && resolve()));
  const t0 = performance.now();
  await Promise.all(
    swarm.clients.map(
      (client, i) =>
        new Promise<void>((resolve) => {
          let sent = 0;
          let inflight = 0;
          const pump = (): void => {
            while (inflight < WINDOW && sent < perSite) {
              sent++;
              inflight++;
              client.publish(`bench/raw/${i}`, payload, { qos: 1 }, () => {
                inflight--;
                if (sent < perSite) pump();
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
  await sub.endAsync();
  return (total / ms) * 1000;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  // A burst from N sites is N × window messages queued for the controller at once:
  // past max_queued_messages (1000 by default) Mosquitto drops them and the sites
  // resend after their ack timeout. Sized as docs/sync.md advises for production.
  const broker = await startMosquitto({ extraConfig: [`max_queued_messages ${Math.max(1000, SITES * WINDOW * 2)}`, 'max_inflight_messages 100'] });
  const swarm = new SiteSwarm({ url: broker.url, sites: SITES, prefix: 'bench-site', window: WINDOW });
  const results: Array<{ instances: number; seconds: number; rate: number; received: number; cpu: number; swarmCpu: number; resent: number }> = [];
  try {
    const c0 = performance.now();
    await swarm.connect();
    console.log(`${SITES} simulated sites connected in ${((performance.now() - c0) / 1000).toFixed(1)} s`);
    // As many bytes as an up/telemetry message carries.
    const payload = Buffer.alloc(telemetryMessageBytes('bench-site-0001'), 'x');
    await rawRate(broker.url, swarm, Math.max(1, Math.floor(PER_SITE / 5)), payload); // warm-up
    const rawBefore = await rawRate(broker.url, swarm, PER_SITE, payload);

    for (const n of INSTANCES) {
      const stateDir = mkdtempSync(path.join(tmpdir(), 'bench-ingest-'));
      try {
        const share = n > 1 ? 'ingest' : undefined;
        const instances = await Promise.all(Array.from({ length: n }, (_, i) => serve(broker.url, stateDir, `bench-ctl-${i + 1}`, share)));
        // Let each instance take in the retained births before the clock starts.
        await new Promise((r) => setTimeout(r, 2000));
        const pids = instances.map((i) => i.child.pid as number);
        const ticks0 = (await Promise.all(pids.map(procTicks))).reduce((a, b) => a + b, 0);
        const t0 = performance.now();
        const own0 = process.cpuUsage();
        const { resent } = await swarm.sendAll(PER_SITE);
        const seconds = (performance.now() - t0) / 1000;
        const own = process.cpuUsage(own0);
        const ticks1 = (await Promise.all(pids.map(procTicks))).reduce((a, b) => a + b, 0);
        for (const i of instances) await stopProcess(i.child, { graceMs: 15_000 });
        const received = instances.reduce((a, i) => a + Number(i.lines.find((l) => l['event'] === 'controller.stopped')?.['received'] ?? 0), 0);
        results.push({ instances: n, seconds, rate: TOTAL / seconds, received, cpu: ((ticks1 - ticks0) / CLK_TCK / seconds) * 100, swarmCpu: ((own.user + own.system) / 1e6 / seconds) * 100, resent });
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    }
    const rawAfter = await rawRate(broker.url, swarm, PER_SITE, payload);
    const raw = (rawBefore + rawAfter) / 2;

    console.log(`\ncontroller ingest: ${SITES} sites × ${PER_SITE} telemetry messages (${payload.length} B) = ${fmt(TOTAL)}, window ${WINDOW} per site`);
    for (const r of results) {
      console.log(
        `  ${r.instances} instance${r.instances > 1 ? 's (--share, one SQLite store)' : ''}: ${r.seconds.toFixed(2)} s, ${fmt(r.rate)} msg/s committed and acked` +
          ` (CPU, % of one core: controller ${Math.round(r.cpu)}, simulated sites ${Math.round(r.swarmCpu)}; received ${fmt(r.received)}, resent by sites ${r.resent}); ratio to raw ${(r.rate / raw).toFixed(2)}`,
      );
    }
    console.log(`  Mosquitto QoS 1 raw, same connections, payload and window: ${fmt(rawBefore)} / ${fmt(rawAfter)} msg/s (before/after)`);
    console.log(`  load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.availableParallelism()} cores`);
  } finally {
    await swarm.close();
    await broker.cleanup();
  }
}

await main();
