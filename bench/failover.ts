// Failover when a site's WAN dies (docs/sync.md#calls-between-sites), on three hosts in
// network namespaces (test/helpers/three-sites.ts; needs root): site A's WAN link goes
// down and, at that very moment, phone 1001 at A calls 2001, who lives at site B. The
// call must go out through A's line card (the sim PSTN answers 2001's DID after
// 200 ms) without waiting for a SIP timeout. Per round:
//   - WAN loss → call connected: from the link going down to A answering the phone
//     (includes SIPp starting, the 407 round trip and the sim's 200 ms answer delay);
//   - at A: INVITE → connected, and how the peer was passed over (skipped because the
//     probes had already failed, or tried and given up after peers.no_response_timeout);
//   - WAN loss → detection (survivable mode: probe_interval 0.5 s, enter_after 1 s);
//   - after detection: INVITE → connected at A (the peer is not tried at all).
// Two phases: A's own link goes down with WAN probes every 0.5 s (A's MQTT client and
// probes see the dead interface at once), and the far end of A's WAN link goes down
// (central's side: packets to and from A just vanish) with probes every 5 s, so that
// the call comes before anything has noticed and the peer's silence decides.
// Prints figures; never passes or fails on time.
//
//   node bench/failover.ts [--rounds 3]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AgentHandle, LogLine } from '../test/helpers/agent.ts';
import { registerSippPhone, runCall } from '../test/helpers/sipp-calls.ts';
import { createNamespaces, deleteNamespaces, DOMAIN, ip, logTime, NS, startCentral, startSite } from '../test/helpers/three-sites.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) {
  console.error('--rounds must be an integer from 1 to 50');
  process.exit(2);
}

interface Round {
  lossToConnectedMs: number;
  agentSetupMs: number;
  peer: 'skipped' | 'tried';
  detectMs: number;
  afterDetectionSetupMs: number;
}

async function call(): Promise<void> {
  const r = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '2001',
    callerScenario: 'b2bua-uac-early-media',
    callerNetns: NS.a,
    callees: [],
    callerExtraArgs: ['-d', '200'],
  });
  if (r.caller.successful !== 1) throw new Error(`the call to 2001 did not connect: ${JSON.stringify(r.caller)}`);
}

/** INVITE → answered at A for the first call to 2001 that started at or after `from`. */
async function setupAtA(a: AgentHandle, from: number): Promise<{ started: LogLine; answered: LogLine }> {
  const started = await a.waitForLog((l) => l['event'] === 'call.started' && l['dialed'] === '2001' && logTime(l) >= from, 5000);
  const answered = await a.waitForLog((l) => l['event'] === 'call.state' && l['state'] === 'answered' && l['call'] === started['call'], 5000);
  return { started, answered };
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] as number;
}

type Cut = 'site' | 'upstream';

/** The link that goes down: A's end of the WAN veth, or central's end. */
function wanLink(cut: Cut, state: 'up' | 'down'): Promise<string> {
  return cut === 'site' ? ip('-n', NS.a, 'link', 'set', 'wa', state) : ip('-n', NS.c, 'link', 'set', 'ca', state);
}

async function phase(probeIntervalSec: number, cut: Cut): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'branchline-failover-'));
  const agents: AgentHandle[] = [];
  let central: { stop(): Promise<void> } | undefined;
  try {
    await createNamespaces();
    central = await startCentral(work);
    const health = { health: { probe_interval: probeIntervalSec, probe_timeout: Math.min(1.5, probeIntervalSec * 0.8) } };
    const [a, b] = await Promise.all([startSite('a', undefined, health), startSite('b', undefined, health)]);
    agents.push(a, b);
    console.log(`# ${cut === 'site' ? "A's WAN link down" : "the far end of A's WAN link down"}; WAN probes every ${probeIntervalSec} s, enter_after 1 s, peers.no_response_timeout 0.4 s`);
    await rounds(a, cut);
  } finally {
    for (const h of agents) await h.cleanup().catch(() => undefined);
    await central?.stop();
    await deleteNamespaces();
    await rm(work, { recursive: true, force: true });
  }
}

async function rounds(a: AgentHandle, cut: Cut): Promise<void> {
  await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '1001', password: 'pw-1001' }, 25061, NS.a);
  await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '2001', password: 'pw-2001' }, 25063, NS.b);
  await a.waitForLog((l) => l['event'] === 'peers.directory' && l['site'] === 'site-b', 15_000);
  const done: Round[] = [];
  let restoredAt = 0;
  for (let i = 0; i < ROUNDS; i++) {
    // Back to normal (return_after 2 s) with B online again before the next cut.
    if (i > 0) await a.waitForLog((l) => l['event'] === 'health.mode' && l['mode'] === 'normal' && logTime(l) >= restoredAt, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const cutAt = Date.now();
    await wanLink(cut, 'down');
    await call();
    const first = await setupAtA(a, cutAt);
    const tried = a.logs().some((l) => l['event'] === 'call.peer_silent' && l['call'] === first.started['call']);
    const survivable = await a.waitForLog((l) => l['event'] === 'health.mode' && l['mode'] === 'survivable' && logTime(l) >= cutAt, 15_000);
    const detectedAt = Date.now();
    await call();
    const second = await setupAtA(a, detectedAt);
    done.push({
      lossToConnectedMs: logTime(first.answered) - cutAt,
      agentSetupMs: logTime(first.answered) - logTime(first.started),
      peer: tried ? 'tried' : 'skipped',
      detectMs: logTime(survivable) - cutAt,
      afterDetectionSetupMs: logTime(second.answered) - logTime(second.started),
    });
    restoredAt = Date.now();
    await wanLink(cut, 'up');
    const r = done[done.length - 1] as Round;
    console.log(
      `round ${i + 1}: WAN loss → connected via line card ${r.lossToConnectedMs} ms (at A: INVITE → connected ${r.agentSetupMs} ms, peer ${r.peer}); WAN loss → survivable ${r.detectMs} ms; after detection INVITE → connected ${r.afterDetectionSetupMs} ms`,
    );
  }
  console.log(
    `median of ${ROUNDS}: WAN loss → connected ${median(done.map((r) => r.lossToConnectedMs))} ms; detection ${median(done.map((r) => r.detectMs))} ms; after detection ${median(done.map((r) => r.afterDetectionSetupMs))} ms (the sim PSTN answers after 200 ms in each)`,
  );
}

await phase(0.5, 'site');
await phase(5, 'upstream');
