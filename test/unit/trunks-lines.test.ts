// The trunks on real (simulated) lines: drivers/sim cards with their simulated PSTN,
// not mocks. Inbound DIDs, failover across trunk groups on a pulled cable and on
// congestion, far-end refusals, and emergency pre-emption as the PSTN sees them.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { EventBus, type AgentEvents } from '../../agent/events/bus.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { TrunkError } from '../../agent/trunks/errors.ts';
import { loadHourlyUsage } from '../../agent/trunks/usage-store.ts';
import { TrunkPlan } from '../../agent/trunks/plan.ts';
import { TrunkService, type InboundTrunkCall } from '../../agent/trunks/trunk-service.ts';
import { createLineCard, type LineCard, type ReleaseEvent } from '../../drivers/index.ts';
import type { SimCard } from '../../drivers/sim/sim-card.ts';
import type { PstnCall } from '../../drivers/sim/pstn-call.ts';

const tempDir = mkdtempSync(path.join(tmpdir(), 'bl-trunks-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));

const TIME_SCALE = 0.02;

interface Rig {
  service: TrunkService;
  events: Array<{ name: string; payload: unknown }>;
  cards: Map<string, SimCard>;
  stop(): Promise<void>;
}

async function rig(extra: Record<string, unknown>, linecards: Array<Record<string, unknown>>, db?: Database): Promise<Rig> {
  const config = configFromData(
    {
      site: { id: 'branch-01' },
      sip: { domain: 'example.test' },
      extensions: [
        { number: '1001', password: 'secret-1' },
        { number: '2001', password: 'secret-2' },
      ],
      linecards,
      trunking: { progress_timeout: 0.5, max_queue_wait: 2, ...((extra['trunking'] as object | undefined) ?? {}) },
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'trunking')),
    },
    'test.yaml',
  );
  const cards = config.linecards.map((c) => createLineCard(c, { timeScale: TIME_SCALE }));
  for (const card of cards) await card.start();
  const logger = createLogger('silent');
  const bus = new EventBus(logger);
  const events: Rig['events'] = [];
  for (const name of ['trunk.alarm', 'trunk.preempted'] as const) bus.on(name, (payload: AgentEvents[typeof name]) => events.push({ name, payload }));
  const service = new TrunkService({ plan: new TrunkPlan(config), cards, logger, bus, ...(db ? { db } : {}) });
  service.start();
  return {
    service,
    events,
    cards: new Map(cards.map((c) => [c.name, c as SimCard])),
    async stop() {
      await service.stop();
      for (const card of cards) await card.stop();
    },
  };
}

function card(r: Rig, name: string): SimCard {
  const c = r.cards.get(name);
  assert.ok(c, `no card ${name}`);
  return c;
}

async function released(call: PstnCall): Promise<{ cause: number; by: string }> {
  if (call.state === 'released') return { cause: call.releaseCause ?? 0, by: '?' };
  const [event] = await once(call, 'released');
  return event as { cause: number; by: string };
}

async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const caller = { number: '1001', presentation: 'allowed' as const };

test('a call to a DID reaches its extension with caller ID, takes a channel, and frees it on hang-up; an unknown DID is refused', async () => {
  const r = await rig({ dids: [{ number: '5550100', extension: '1001' }] }, [{ driver: 'sim', name: 'e1', type: 'e1' }]);
  try {
    const offered: InboundTrunkCall[] = [];
    r.service.onInbound((call) => {
      offered.push(call);
      void call.answer();
    });
    const pstn = card(r, 'e1').pstn;
    const call = pstn.placeCall({ from: '02079460000', name: 'Carol', to: '5550100' });
    await once(call, 'answered');
    assert.equal(offered.length, 1);
    assert.deepEqual(offered[0]?.target, { kind: 'extension', extension: '1001' });
    assert.equal(offered[0]?.callerId.number, '02079460000');
    assert.equal(offered[0]?.grant.direction, 'inbound');
    assert.equal(r.service.allocator.inUse, 1);
    call.hangup();
    await until(() => r.service.allocator.inUse === 0, 'the channel to be freed');

    const stray = pstn.placeCall({ from: '02079460000', to: '5550199' });
    assert.equal((await released(stray)).cause, 1, 'unallocated number');
    assert.equal(offered.length, 1);
  } finally {
    await r.stop();
  }
});

test('with the first trunk group in alarm (cable pulled), calls go out on the next; plugged back, the first is used again', async () => {
  const r = await rig(
    { routes: [{ pattern: 'X.', trunks: ['e1', 'fxo'] }] },
    [
      { driver: 'sim', name: 'e1', type: 'e1', subscribers: [{ number: '01132000000', answer_after: 0.1 }] },
      { driver: 'sim', name: 'fxo', type: 'fxo', ports: 1, subscribers: [{ number: '01132000000', answer_after: 0.1 }] },
    ],
  );
  try {
    const e1 = card(r, 'e1');
    e1.pstn.pullCable(1);
    await until(() => !r.service.allocator.groupUsable('e1', 'outbound'), 'span 1 to go out of service');
    const call = await r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller, callRef: 'c1' });
    assert.equal(call.group, 'fxo');
    assert.deepEqual(call.failedOver, [], 'a group in alarm is skipped, not tried');
    await call.release();

    e1.pstn.plugCable(1);
    await until(() => r.service.allocator.groupUsable('e1', 'outbound'), 'span 1 back in service');
    assert.deepEqual(
      r.events.map((e) => [e.name, (e.payload as AgentEvents['trunk.alarm']).card, (e.payload as AgentEvents['trunk.alarm']).active]),
      [
        ['trunk.alarm', 'e1', true],
        ['trunk.alarm', 'e1', false],
      ],
    );
    const again = await r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller, callRef: 'c2' });
    assert.equal(again.group, 'e1');
    await again.release();
  } finally {
    await r.stop();
  }
});

test('a trunk group whose network answers with congestion is left for the next group', async () => {
  const r = await rig(
    { routes: [{ pattern: 'X.', trunks: ['e1', 'fxo'] }] },
    [
      { driver: 'sim', name: 'e1', type: 'e1', subscribers: [{ number: '01132000000', behaviour: 'ring' }] },
      { driver: 'sim', name: 'fxo', type: 'fxo', ports: 1, subscribers: [{ number: '01132000000', answer_after: 0.1 }] },
    ],
  );
  try {
    // The exchange behind the E1 is congested: it clears every call with cause 42.
    const e1Calls: PstnCall[] = [];
    card(r, 'e1').pstn.on('call', (call) => {
      e1Calls.push(call);
      call.hangup(42);
    });
    const call = await r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller });
    assert.equal(e1Calls.length, 1, 'the E1 was tried first');
    assert.equal(call.group, 'fxo');
    assert.deepEqual(call.failedOver, [{ group: 'e1', cause: 42 }]);
    await until(() => r.service.allocator.inUse === 1, 'the E1 channel to return to the pool');
    await call.release();
  } finally {
    await r.stop();
  }
});

test('a busy or unknown number is the answer, not a reason to fail over', async () => {
  const r = await rig(
    { routes: [{ pattern: 'X.', trunks: ['e1', 'fxo'] }] },
    [
      { driver: 'sim', name: 'e1', type: 'e1', subscribers: [{ number: '01132000001', behaviour: 'busy' }] },
      { driver: 'sim', name: 'fxo', type: 'fxo', ports: 1 },
    ],
  );
  try {
    const fxoCalls: PstnCall[] = [];
    card(r, 'fxo').pstn.on('call', (call) => fxoCalls.push(call));
    await assert.rejects(r.service.dialOut({ number: '01132000001', emergency: false, callerId: caller }), (err: TrunkError) => {
      assert.equal(err.code, 'EREJECTED');
      assert.equal(err.q850, 17);
      assert.equal(err.sipStatus, 486);
      return true;
    });
    await assert.rejects(r.service.dialOut({ number: '01139999999', emergency: false, callerId: caller }), (err: TrunkError) => err.q850 === 1 && err.sipStatus === 404);
    assert.equal(fxoCalls.length, 0, 'the FXO group was never tried');
    await until(() => r.service.allocator.inUse === 0, 'the E1 channel to return to the pool');
  } finally {
    await r.stop();
  }
});

test('an emergency call on a full trunk pre-empts the newest call, which is cleared with cause 8, and reaches the PSTN', async () => {
  const r = await rig(
    {
      tenants: [{ name: 'acme', extensions: ['1XXX'], max_channels: 2 }],
      routes: [
        { pattern: '999', trunks: ['fxo'] },
        { pattern: 'X.', trunks: ['fxo'] },
      ],
    },
    [{ driver: 'sim', name: 'fxo', type: 'fxo', ports: 2, subscribers: [{ number: '01132000000', answer_after: 0.05 }, { number: '999', answer_after: 0.05 }] }],
  );
  try {
    const fxo: LineCard = card(r, 'fxo');
    const releases: ReleaseEvent[] = [];
    fxo.on('release', (e) => releases.push(e));
    const older = await r.service.dialOut({ number: '01132000000', emergency: false, callerExtension: '1001', callerId: caller, callRef: 'older' });
    const newer = await r.service.dialOut({ number: '01132000000', emergency: false, callerExtension: '1002', callerId: caller, callRef: 'newer' });
    await until(() => fxo.channelState(newer.channel) === 'connected', 'the newer call to connect');

    const pstnCalls: PstnCall[] = [];
    card(r, 'fxo').pstn.on('call', (call) => pstnCalls.push(call));
    const emergency = await r.service.dialOut({ number: '999', emergency: true, callerExtension: '1003', callerId: caller, callRef: 'emergency' });
    assert.deepEqual(emergency.channel, newer.channel, 'the newest call gave up its channel');
    assert.equal(emergency.grant.preempted?.callRef, 'newer');
    const cleared = releases.find((e) => e.channel.span === newer.channel.span);
    assert.equal(cleared?.cause, 8, 'the pre-empted call was released with cause 8 (preemption)');
    assert.equal(cleared?.by, 'local');
    assert.equal(pstnCalls[0]?.to, '999');
    assert.deepEqual(r.events, [{ name: 'trunk.preempted', payload: { channel: 'fxo/2/1', victim: 'newer', victimTenant: 'acme', by: 'emergency', cause: 8 } }]);
    assert.equal(fxo.channelState(older.channel), 'connected', 'the older call is untouched');
    await older.release();
    await emergency.release();
  } finally {
    await r.stop();
  }
});

test('with every channel busy an outbound call waits and takes the first channel freed', async () => {
  const r = await rig({}, [{ driver: 'sim', name: 'fxo', type: 'fxo', ports: 1, subscribers: [{ number: '01132000000', answer_after: 0.05 }] }]);
  try {
    const first = await r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller });
    const waiting = r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller });
    await until(() => r.service.allocator.queued === 1, 'the second call to queue');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await first.release();
    const second = await waiting;
    assert.ok(second.grant.waitedMs >= 100, `waited ${second.grant.waitedMs} ms`);
    await second.release();
  } finally {
    await r.stop();
  }
});

test('two tenants waiting for one FXO line reach the PSTN alternately, in the order measured on the line', async () => {
  const numbers = { a1: '01132000011', a2: '01132000012', a3: '01132000013', g1: '01132000021', g2: '01132000022', g3: '01132000023', hold: '01132000000' };
  const r = await rig(
    {
      trunking: { max_queue_wait: 20 },
      tenants: [
        { name: 'acme', extensions: ['10XX'] },
        { name: 'globex', extensions: ['20XX'] },
      ],
    },
    [{ driver: 'sim', name: 'fxo', type: 'fxo', ports: 1, subscribers: Object.values(numbers).map((number) => ({ number, answer_after: 0.02 })) }],
  );
  try {
    const reached: string[] = [];
    card(r, 'fxo').pstn.on('call', (call) => reached.push(call.to));
    const holding = await r.service.dialOut({ number: numbers.hold, emergency: false, callerExtension: '1001', callerId: caller });
    const granted: Array<Awaited<ReturnType<typeof r.service.dialOut>>> = [];
    const waiting = (['a1', 'a2', 'a3', 'g1', 'g2', 'g3'] as const).map((name) => {
      const p = r.service.dialOut({ number: numbers[name], emergency: false, callerExtension: name.startsWith('a') ? '1001' : '2001', callerId: caller, callRef: name });
      void p.then((call) => granted.push(call));
      return p;
    });
    await until(() => r.service.allocator.queued === 6, 'six calls to queue');
    let active = holding;
    for (let i = 0; i < 6; i++) {
      await active.release();
      await until(() => granted.length === i + 1, `call ${i + 1} to get the line`);
      active = granted[i] as (typeof granted)[number];
    }
    await active.release();
    await Promise.all(waiting);
    const names = Object.fromEntries(Object.entries(numbers).map(([k, v]) => [v, k]));
    assert.deepEqual(
      reached.map((n) => names[n]),
      ['hold', 'a1', 'g1', 'a2', 'g2', 'a3', 'g3'],
    );
    assert.deepEqual(granted.map((c) => c.grant.tenant), ['acme', 'globex', 'acme', 'globex', 'acme', 'globex']);
  } finally {
    await r.stop();
  }
});

test('the running trunks write their hourly usage to the store', async () => {
  const db = await Database.open(path.join(tempDir, 'store.sqlite'));
  await migrate(db);
  const r = await rig(
    { dids: [{ number: '5550100', extension: '1001' }] },
    [{ driver: 'sim', name: 'e1', type: 'e1', subscribers: [{ number: '01132000000', answer_after: 0.02 }] }],
    db,
  );
  try {
    r.service.onInbound((call) => void call.answer());
    const inbound = card(r, 'e1').pstn.placeCall({ from: '02079460000', to: '5550100' });
    await once(inbound, 'answered');
    const out = await r.service.dialOut({ number: '01132000000', emergency: false, callerId: caller });
    await r.service.flushUsage();
    const rows = await loadHourlyUsage(db, { from: 0, to: Date.now() + 3_600_000, tenant: '*' });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.attemptsIn, 1);
    assert.equal(rows[0]?.attemptsOut, 1);
    assert.equal(rows[0]?.peakChannels, 2);
    await out.release();
    inbound.hangup();
  } finally {
    await r.stop();
    await db.close();
  }
});
