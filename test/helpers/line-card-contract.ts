// One contract suite for every line-card driver (drivers/types.ts). Each driver's
// test file gives a harness: the card under test plus a way to act as the far end
// (the simulated PSTN, or the modem emulator's line). The suite asserts only what
// the interface promises, so every driver is held to the same rules.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FRAME_BYTES, LineCardError, type ChannelRef, type LineCard, type LineCardEvents, type ChannelState } from '../../drivers/types.ts';

/** The far end of one call, as the harness drives it. */
export interface FarEndCall {
  /** The far end answers (calls placed by the card). */
  answer(): Promise<void>;
  hangup(): Promise<void>;
  /** The far end starts sending audible audio, paced at 20 ms. */
  startAudio(): void;
  /** Frames the far end got from the card, and how many of them were audible. */
  framesReceived(): number;
  audibleFramesReceived(): number;
  /** Digits the far end detected or was signalled (for `digitsOut`). */
  digitsReceived(): string;
  /** The far end presses keys (for `digitsIn`). */
  sendDigits(digits: string): void;
  /** Resolves when the far end has seen the call end. */
  ended(): Promise<void>;
}

export interface ContractHarness {
  card: LineCard;
  /** The channel the suite dials out on (and expects inbound calls on, for single-channel lines). */
  channel: ChannelRef;
  capabilities: {
    audio: boolean;
    /** The caller's name reaches the card. */
    callerName: boolean;
    /** Far-end ringing is reported as an `alerting` event. */
    alerting: boolean;
    /** sendDigits reaches the far end (in band or signalled). */
    digitsOut: boolean;
    /** Keys pressed at the far end arrive as `digits` events. */
    digitsIn: boolean;
  };
  /** The far end calls `to` from `from`. */
  callIn(from: { number: string; name: string }, to: string): Promise<FarEndCall>;
  /** A number the far end answers when `answer()` is called. */
  dialNumber: string;
  /** The far end's view of the next call the card places. */
  nextOutbound(): Promise<FarEndCall & { number: string }>;
  /** The span fails (cable pulled, device unplugged), then comes back. */
  takeDown(): Promise<void>;
  bringUp(): Promise<void>;
  close(): Promise<void>;
}

type Recorded = { [K in keyof LineCardEvents]: { event: K; payload: LineCardEvents[K][0] } }[keyof LineCardEvents];

function record(card: LineCard): Recorded[] {
  const events: Recorded[] = [];
  for (const event of ['incoming', 'alerting', 'answer', 'release', 'digits', 'state', 'alarm', 'alarm-cleared'] as const) {
    const listener = (payload: unknown): void => {
      events.push({ event, payload } as Recorded);
    };
    card.on(event, listener as never);
  }
  return events;
}

function once<K extends keyof LineCardEvents>(card: LineCard, event: K, timeoutMs = 8000, match?: (p: LineCardEvents[K][0]) => boolean): Promise<LineCardEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      card.off(event, listener as never);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
    }, timeoutMs);
    const listener = (payload: LineCardEvents[K][0]): void => {
      if (match && !match(payload)) return;
      clearTimeout(timer);
      card.off(event, listener as never);
      resolve(payload);
    };
    card.on(event, listener as never);
  });
}

async function waitState(card: LineCard, channel: ChannelRef, state: ChannelState, timeoutMs = 8000): Promise<void> {
  if (card.channelState(channel) === state) return;
  await once(card, 'state', timeoutMs, (e) => e.channel.span === channel.span && e.channel.channel === channel.channel && e.state === state);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A loud 1 kHz-ish µ-law/A-law pattern: alternating high-amplitude codes are audible in either law. */
function audibleFrame(): Uint8Array {
  const frame = new Uint8Array(FRAME_BYTES);
  for (let i = 0; i < FRAME_BYTES; i++) frame[i] = i % 8 < 4 ? 0x20 : 0xa0;
  return frame;
}

/** Writes frames paced at 20 ms on the channel until stopped. */
function pump(card: LineCard, channel: ChannelRef): () => void {
  const frame = audibleFrame();
  const timer = setInterval(() => card.writeFrame(channel, frame), 20);
  return () => clearInterval(timer);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof LineCardError && err.code === code);
}

export function lineCardContract(label: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`line-card contract: ${label}`, () => {
    let h: ContractHarness;
    let events: Recorded[];

    beforeEach(async () => {
      h = await makeHarness();
      await h.card.start();
      events = record(h.card);
    });

    afterEach(async () => {
      await h.card.stop();
      await h.close();
    });

    it('starts with every channel idle and names bad channels', () => {
      const spans = h.card.spans();
      assert.ok(spans.length >= 1);
      const channels = h.card.channels();
      assert.equal(channels.length, spans.reduce((n, s) => n + s.channels, 0));
      assert.ok(channels.every((c) => c.state === 'idle'));
      assert.throws(() => h.card.channelState({ span: 99, channel: 1 }), (e: unknown) => e instanceof LineCardError && e.code === 'ENOCHANNEL');
    });

    it('offers an inbound call with caller ID, connects on answer, carries audio both ways and reports the far end hanging up', async () => {
      const incoming = once(h.card, 'incoming');
      const far = await h.callIn({ number: '2125550147', name: 'ALICE' }, '5550100');
      const call = await incoming;
      assert.equal(call.callerId.number, '2125550147');
      assert.equal(call.callerId.presentation, 'allowed');
      if (h.capabilities.callerName) assert.equal(call.callerId.name, 'ALICE');
      assert.ok(call.dialled.length > 0);
      assert.equal(h.card.channelState(call.channel), 'alerting');

      const received: Uint8Array[] = [];
      const unsubscribe = h.card.onFrame(call.channel, (f) => received.push(Uint8Array.from(f)));
      await h.card.answer(call.channel);
      await waitState(h.card, call.channel, 'connected');
      if (h.capabilities.audio) {
        const stop = pump(h.card, call.channel);
        far.startAudio();
        // Ten 20 ms frames each way, however long a loaded machine takes to carry them.
        const deadline = Date.now() + 5000;
        while ((received.length < 10 || far.audibleFramesReceived() < 10) && Date.now() < deadline) await sleep(20);
        stop();
        assert.ok(received.length >= 10, `card received ${received.length} frames`);
        assert.ok(received.every((f) => f.length === FRAME_BYTES));
        assert.ok(far.audibleFramesReceived() >= 10, `far end heard ${far.audibleFramesReceived()} audible frames`);
      }
      if (h.capabilities.digitsIn) {
        const digits = once(h.card, 'digits');
        far.sendDigits('5');
        assert.deepEqual(await digits, { channel: call.channel, digits: '5' });
      }
      unsubscribe();
      const release = once(h.card, 'release');
      await far.hangup();
      const released = await release;
      assert.deepEqual(released.channel, call.channel);
      assert.equal(released.by, 'remote');
      assert.equal(released.cause, 16);
      await waitState(h.card, call.channel, 'idle');
      assert.equal(events.filter((e) => e.event === 'release').length, 1);
      const states = events.filter((e) => e.event === 'state').map((e) => (e.payload as { state: string }).state);
      assert.deepEqual(states, ['alerting', 'connected', 'releasing', 'idle']);
    });

    it('seizes and dials, reports the far end answering, and clears locally', async () => {
      const outbound = h.nextOutbound();
      await h.card.dial(h.channel, { number: h.dialNumber, callerId: { number: '5550100', presentation: 'allowed' } });
      assert.ok(['seized', 'alerting'].includes(h.card.channelState(h.channel)));
      const far = await outbound;
      assert.equal(far.number, h.dialNumber);
      if (h.capabilities.alerting) await waitState(h.card, h.channel, 'alerting');
      const answered = once(h.card, 'answer');
      await far.answer();
      assert.deepEqual((await answered).channel, h.channel);
      assert.equal(h.card.channelState(h.channel), 'connected');
      if (h.capabilities.digitsOut) {
        await h.card.sendDigits(h.channel, '1#');
        const deadline = Date.now() + 5000;
        while (far.digitsReceived() !== '1#' && Date.now() < deadline) await sleep(20);
        assert.equal(far.digitsReceived(), '1#');
      }
      const release = once(h.card, 'release');
      await h.card.release(h.channel);
      assert.deepEqual(await release, { channel: h.channel, cause: 16, by: 'local' });
      assert.equal(h.card.channelState(h.channel), 'idle');
      await far.ended();
      assert.equal(events.filter((e) => e.event === 'release').length, 1);
    });

    it('refuses what it cannot do with a coded error', async () => {
      await rejectsWith(h.card.dial(h.channel, { number: 'not a number' }), 'EARGUMENT');
      await rejectsWith(h.card.answer(h.channel), 'EBUSY');
      await rejectsWith(h.card.sendDigits(h.channel, '1'), 'ENOTCONNECTED');
      await rejectsWith(h.card.dial({ span: 42, channel: 1 }, { number: '123' }), 'ENOCHANNEL');
      assert.throws(() => h.card.writeFrame(h.channel, new Uint8Array(80)), (e: unknown) => e instanceof LineCardError && e.code === 'EARGUMENT');
      assert.equal(h.card.writeFrame(h.channel, new Uint8Array(FRAME_BYTES)), false);
      await h.card.release(h.channel); // idle: nothing to do
      const outbound = h.nextOutbound();
      await h.card.dial(h.channel, { number: h.dialNumber });
      await rejectsWith(h.card.dial(h.channel, { number: h.dialNumber }), 'EBUSY');
      await outbound;
      await h.card.release(h.channel);
    });

    it('on span failure releases the call (cause 38), goes out of service, and recovers when the span is back', async () => {
      const incoming = once(h.card, 'incoming');
      await h.callIn({ number: '2125550147', name: 'ALICE' }, '5550100');
      const call = await incoming;
      await h.card.answer(call.channel);
      const alarm = once(h.card, 'alarm');
      const release = once(h.card, 'release');
      await h.takeDown();
      const raised = await alarm;
      assert.equal(raised.span, call.channel.span);
      assert.deepEqual(await release, { channel: call.channel, cause: 38, by: 'network' });
      await waitState(h.card, call.channel, 'out-of-service');
      assert.ok(h.card.spans()[call.channel.span - 1]!.alarms.includes(raised.alarm));
      await rejectsWith(h.card.dial(call.channel, { number: h.dialNumber }), 'EOUTOFSERVICE');

      const cleared = once(h.card, 'alarm-cleared', 15_000);
      await h.bringUp();
      assert.equal((await cleared).alarm, raised.alarm);
      await waitState(h.card, call.channel, 'idle', 15_000);
      assert.deepEqual(h.card.spans()[call.channel.span - 1]!.alarms, []);
      // The span works again.
      const again = once(h.card, 'incoming');
      const far = await h.callIn({ number: '2125550148', name: 'BOB' }, '5550100');
      assert.equal((await again).callerId.number, '2125550148');
      const end = once(h.card, 'release');
      await far.hangup();
      await end;
    });

    it('releases live calls when stopped', async () => {
      const outbound = h.nextOutbound();
      await h.card.dial(h.channel, { number: h.dialNumber });
      await outbound;
      const release = once(h.card, 'release');
      await h.card.stop();
      assert.deepEqual(await release, { channel: h.channel, cause: 16, by: 'local' });
    });
  });
}
