import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChannelAllocator, type ChannelGrant, type PooledChannel, type Preemption } from '../../agent/trunks/channel-allocator.ts';
import { ManualClock } from '../../agent/trunks/clock.ts';
import { TrunkError } from '../../agent/trunks/errors.ts';

function channels(group: string, count: number, direction: PooledChannel['direction'] = 'both'): PooledChannel[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${group}/${i + 1}`, group, direction }));
}

/** Follows a request without awaiting it: what it settled to so far (a function, so checks do not narrow it). */
function track<T>(promise: Promise<T>): { value: () => T | undefined; error: () => unknown; done: Promise<void> } {
  let value: T | undefined;
  let error: unknown;
  const done = promise.then(
    (v) => {
      value = v;
    },
    (err: unknown) => {
      error = err;
    },
  );
  return { value: () => value, error: () => error, done };
}

/** Lets promise callbacks (grants, rejections) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<TrunkError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TrunkError, `expected a TrunkError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to be refused');
}

test('calls waiting for a channel are served alternately between tenants, not first come first served', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: channels('pri', 2), maxWaitMs: 60_000, clock });
  const held = [await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }), await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] })];
  const served: string[] = [];
  const grants: ChannelGrant[] = [];
  const waiting: Promise<ChannelGrant>[] = [];
  // acme queues three calls before globex queues any.
  for (const ref of ['acme-1', 'acme-2', 'acme-3']) waiting.push(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], callRef: ref }));
  for (const ref of ['globex-1', 'globex-2', 'globex-3']) waiting.push(alloc.requestOutbound({ tenant: 'globex', groups: ['pri'], callRef: ref }));
  for (const p of waiting) {
    void p.then((g) => {
      served.push(g.callRef ?? '?');
      grants.push(g);
    });
  }
  assert.equal(alloc.queued, 6);

  // Every second the oldest call ends; its channel goes to the next waiting call.
  const active = [...held];
  while (served.length < 6) {
    clock.advance(1000);
    alloc.release(active.shift() as ChannelGrant);
    await settle();
    active.push(grants[grants.length - 1] as ChannelGrant);
  }
  assert.deepEqual(served, ['acme-1', 'globex-1', 'acme-2', 'globex-2', 'acme-3', 'globex-3']);
  assert.equal(grants[1]?.waitedMs, 2000, 'globex-1 waited for the second channel to free');
  assert.equal(grants[5]?.waitedMs, 6000);
});

test('a tenant at its channel cap waits while another tenant takes the idle channel', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: channels('pri', 3), tenants: [{ name: 'acme', maxChannels: 1 }], maxWaitMs: 30_000, clock });
  const first = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const second = track(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }));
  await settle();
  assert.equal(second.value(), undefined, 'the cap holds with two channels idle');
  const other = await alloc.requestOutbound({ tenant: 'globex', groups: ['pri'] });
  assert.equal(other.channel, 'pri/2');
  // An inbound call for the capped tenant is refused at once, not queued.
  assert.throws(() => alloc.acquireInbound({ channel: 'pri/3', tenant: 'acme' }), (err: TrunkError) => err.code === 'ETENANT_CAP' && err.sipStatus === 486);

  clock.advance(5000);
  alloc.release(first);
  await second.done;
  assert.equal(second.value()?.waitedMs, 5000);
  assert.equal(alloc.snapshot().tenants.find((t) => t.name === 'acme')?.inUse, 1);
});

test('the call-rate throttle allows the burst, then refuses with the time to the next call as Retry-After', async () => {
  const clock = new ManualClock(1_000_000);
  const alloc = new ChannelAllocator({ channels: channels('pri', 10), tenants: [{ name: 'acme', callsPerMinute: 6, burst: 2 }], maxWaitMs: 30_000, clock });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const refused = await rejection(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }));
  assert.equal(refused.code, 'ETHROTTLED');
  assert.equal(refused.sipStatus, 503);
  assert.equal(refused.retryAfterSec, 10, 'six a minute: one every ten seconds');
  // Another tenant is not affected by acme's throttle.
  await alloc.requestOutbound({ tenant: 'globex', groups: ['pri'] });
  clock.advance(9_999);
  assert.equal((await rejection(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }))).code, 'ETHROTTLED');
  clock.advance(1);
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
});

test('a call that waits the maximum time fails with 503 and Retry-After, and not a moment before', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: channels('pri', 1), maxWaitMs: 8_000, retryAfterSec: 15, clock });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const waiting = track(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }));
  clock.advance(7_999);
  await settle();
  assert.equal(waiting.value(), undefined);
  assert.equal(waiting.error(), undefined);
  assert.equal(alloc.queued, 1);
  clock.advance(1);
  await waiting.done;
  const outcome = waiting.error();
  assert.ok(outcome instanceof TrunkError);
  assert.equal(outcome.code, 'EQUEUE_TIMEOUT');
  assert.equal(outcome.sipStatus, 503);
  assert.equal(outcome.retryAfterSec, 15);
  assert.equal(outcome.q850, 34, 'no circuit/channel available, for a caller on a line');
  assert.equal(alloc.queued, 0);
});

test('inbound calls are taken at once while outbound calls wait, and inbound-only channels never go to outbound', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({
    channels: [...channels('did', 1, 'inbound'), ...channels('pri', 2, 'both')],
    maxWaitMs: 30_000,
    clock,
  });
  const out1 = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri', 'did'] });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri', 'did'] });
  const queued = track(alloc.requestOutbound({ tenant: 'acme', groups: ['pri', 'did'] }));
  await settle();
  assert.equal(queued.value(), undefined, 'the idle inbound-only channel is not given to an outbound call');

  const inbound = alloc.acquireInbound({ channel: 'did/1', tenant: 'acme', callRef: 'in-1' });
  assert.equal(inbound.direction, 'inbound');
  assert.equal(inbound.waitedMs, 0);
  assert.equal(alloc.queued, 1, 'the outbound call still waits; the inbound one did not wait behind it');

  // An inbound call on a bidirectional channel that is idle is also taken at once.
  alloc.release(out1);
  await queued.done;
  assert.equal(queued.value()?.channel, 'pri/1');
  alloc.release(queued.value() as ChannelGrant);
  const inbound2 = alloc.acquireInbound({ channel: 'pri/1', tenant: 'globex' });
  assert.equal(inbound2.channel, 'pri/1');
  // A channel already in use refuses an inbound call rather than queueing it.
  assert.throws(() => alloc.acquireInbound({ channel: 'pri/2', tenant: 'globex' }), (err: TrunkError) => err.code === 'ECHANNEL_UNAVAILABLE');
});

test('an emergency call pre-empts the newest non-emergency outbound call when every channel is busy', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({
    channels: channels('pri', 2),
    tenants: [{ name: 'acme', maxChannels: 2, callsPerMinute: 1, burst: 1 }],
    maxWaitMs: 30_000,
    clock,
  });
  const notices: Preemption[] = [];
  alloc.onPreempt((p) => notices.push(p));
  const older = await alloc.requestOutbound({ tenant: 'globex', groups: ['pri'], callRef: 'older' });
  clock.advance(1000);
  const inbound = alloc.acquireInbound({ channel: 'pri/2', tenant: 'acme', callRef: 'inbound' });
  clock.advance(1000);
  alloc.release(inbound);
  const newer = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], callRef: 'newer' });

  // acme is throttled and every channel is busy, yet the emergency call gets a channel at once.
  const emergency = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], emergency: true, callRef: '911' });
  assert.equal(emergency.channel, newer.channel);
  assert.equal(emergency.preempted, newer);
  assert.equal(notices.length, 1);
  assert.equal(notices[0]?.victim.callRef, 'newer');
  assert.equal(notices[0]?.cause, 8, 'Q.850 cause 8: preemption');
  assert.match(notices[0]?.reason ?? '', /emergency/);

  // The pre-empted call's owner releasing it later does not free the emergency call's channel.
  alloc.release(newer);
  assert.equal(alloc.snapshot().channels.find((c) => c.id === emergency.channel)?.grant, emergency);
  assert.equal(alloc.inUse, 2);

  // A second emergency call takes the other channel; a third has none left to take.
  const second = await alloc.requestOutbound({ tenant: 'globex', groups: ['pri'], emergency: true });
  assert.equal(second.preempted, older);
  assert.equal((await rejection(alloc.requestOutbound({ tenant: 'globex', groups: ['pri'], emergency: true }))).code, 'EOUT_OF_SERVICE');
});

test('an emergency call uses an idle channel of any group before pre-empting anyone', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: [...channels('pri', 1), ...channels('fxo', 1)], maxWaitMs: 1000, clock });
  const notices: Preemption[] = [];
  alloc.onPreempt((p) => notices.push(p));
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const emergency = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], emergency: true });
  assert.equal(emergency.channel, 'fxo/1');
  assert.equal(emergency.preempted, undefined);
  assert.equal(notices.length, 0);
});

test('trunk groups are tried in order: a busy first group fails over to the next', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: [...channels('span1', 1), ...channels('span2', 1), ...channels('fxo', 1)], maxWaitMs: 1000, clock });
  const order = ['span1', 'span2', 'fxo'];
  assert.equal((await alloc.requestOutbound({ tenant: 't', groups: order })).group, 'span1');
  assert.equal((await alloc.requestOutbound({ tenant: 't', groups: order })).group, 'span2');
  alloc.setInService('fxo/1', false);
  const refused = await rejection(alloc.requestOutbound({ tenant: 't', groups: ['fxo'] }));
  assert.equal(refused.code, 'EOUT_OF_SERVICE', 'a group with every channel in alarm fails at once instead of queueing');
  const waiting = track(alloc.requestOutbound({ tenant: 't', groups: order }));
  await settle();
  assert.equal(waiting.value(), undefined);
  alloc.setInService('fxo/1', true);
  await waiting;
  assert.equal(waiting.value()?.group, 'fxo', 'a channel returning to service wakes the queue');
});

test('a caller who hangs up leaves the queue, and the channel goes to the next caller', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: channels('pri', 1), maxWaitMs: 30_000, clock });
  const busy = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const hangup = new AbortController();
  const gaveUp = alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], signal: hangup.signal });
  const next = alloc.requestOutbound({ tenant: 'acme', groups: ['pri'], callRef: 'next' });
  hangup.abort();
  assert.equal((await rejection(gaveUp)).code, 'ECANCELLED');
  alloc.release(busy);
  assert.equal((await next).callRef, 'next');
});

test('a tenant may not queue more than its limit, and queueing can be turned off', async () => {
  const clock = new ManualClock();
  const alloc = new ChannelAllocator({ channels: channels('pri', 1), tenants: [{ name: 'acme', maxQueued: 1 }], maxWaitMs: 30_000, clock });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  void alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }).catch(() => undefined);
  assert.equal((await rejection(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }))).code, 'EQUEUE_FULL');
  alloc.cancelAll('stopping');

  const noQueue = new ChannelAllocator({ channels: channels('pri', 1), maxWaitMs: 0, clock });
  await noQueue.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const refused = await rejection(noQueue.requestOutbound({ tenant: 'acme', groups: ['pri'] }));
  assert.equal(refused.code, 'ECONGESTION');
  assert.equal(refused.sipStatus, 503);
});

test('bad allocator input is refused with a clear error', () => {
  const clock = new ManualClock();
  assert.throws(() => new ChannelAllocator({ channels: [...channels('pri', 1), ...channels('pri', 1)], maxWaitMs: 0, clock }), /pri\/1 is listed twice/);
  assert.throws(() => new ChannelAllocator({ channels: [], maxWaitMs: -1, clock }), /maxWaitMs/);
  assert.throws(() => new ChannelAllocator({ channels: [], tenants: [{ name: 'a', callsPerMinute: 0 }], maxWaitMs: 0, clock }), /call rate must be positive/);
  const alloc = new ChannelAllocator({ channels: channels('pri', 1), maxWaitMs: 0, clock });
  assert.throws(() => alloc.setInService('nope', false), /no channel nope/);
  assert.throws(() => alloc.acquireInbound({ channel: 'nope', tenant: 'a' }), (err: TrunkError) => err.code === 'ECHANNEL_UNAVAILABLE');
});
