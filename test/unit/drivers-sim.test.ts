// What the simulated card does beyond the common contract: card shapes, how each
// signalling model presents calls, the causes a subscriber's behaviour produces,
// channel choice and congestion, alarms other than a pulled cable, and the factory
// that builds cards from `linecards[]`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { createLineCard, createLineCards, lineCardProblems, LineCardError, type LineCardEvents } from '../../drivers/index.ts';
import { SimCard } from '../../drivers/sim/sim-card.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function once<K extends keyof LineCardEvents>(card: SimCard, event: K, timeoutMs = 3000): Promise<LineCardEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
    card.once(event, ((p: LineCardEvents[K][0]) => {
      clearTimeout(timer);
      resolve(p);
    }) as never);
  });
}

async function withCard(options: ConstructorParameters<typeof SimCard>[0], body: (card: SimCard) => Promise<void>): Promise<void> {
  const card = new SimCard({ timeScale: 0.02, ...options });
  await card.start();
  try {
    await body(card);
  } finally {
    await card.stop();
  }
}

describe('sim card shapes', () => {
  it('T1 PRI has 23 µ-law bearers, T1 CAS 24, E1 30 A-law, FXO one channel per port', () => {
    const shape = (o: ConstructorParameters<typeof SimCard>[0]) => new SimCard(o).spans().map((s) => [s.kind, s.signalling, s.law, s.channels]);
    assert.deepEqual(shape({ name: 'a', type: 't1' }), [['t1', 'pri', 'PCMU', 23]]);
    assert.deepEqual(shape({ name: 'a', type: 't1', signalling: 'cas' }), [['t1', 'cas', 'PCMU', 24]]);
    assert.deepEqual(shape({ name: 'a', type: 'e1', spans: 2 }), [['e1', 'pri', 'PCMA', 30], ['e1', 'pri', 'PCMA', 30]]);
    assert.deepEqual(shape({ name: 'a', type: 'fxo', ports: 3 }), [['fxo', 'loop-start', 'PCMU', 1], ['fxo', 'loop-start', 'PCMU', 1], ['fxo', 'loop-start', 'PCMU', 1]]);
  });
});

describe('sim signalling models', () => {
  it('PRI delivers the caller name; CAS delivers the number only; a withheld number arrives without digits', async () => {
    await withCard({ name: 'pri', type: 'e1' }, async (card) => {
      const incoming = once(card, 'incoming');
      card.pstn.placeCall({ from: '2125550147', name: 'ALICE', to: '5550100' });
      assert.deepEqual((await incoming).callerId, { number: '2125550147', name: 'ALICE', presentation: 'allowed' });
      const withheld = once(card, 'incoming');
      card.pstn.placeCall({ from: '2125550148', presentation: 'restricted', to: '5550101' });
      const call = await withheld;
      assert.deepEqual(call.callerId, { presentation: 'restricted' });
      assert.equal(call.dialled, '5550101');
    });
    await withCard({ name: 'cas', type: 't1', signalling: 'cas' }, async (card) => {
      const incoming = once(card, 'incoming');
      card.pstn.placeCall({ from: '2125550147', name: 'ALICE', to: '5550100' });
      assert.deepEqual((await incoming).callerId, { number: '2125550147', presentation: 'allowed' });
    });
  });

  it('CAS takes longer to dial than PRI: wink, then one digit at a time', async () => {
    const timeDial = async (signalling: 'pri' | 'cas'): Promise<number> => {
      let ms = 0;
      await withCard({ name: signalling, type: 't1', signalling, timeScale: 0.1, subscribers: [{ number: '5559000', behaviour: 'ring' }] }, async (card) => {
        const t0 = performance.now();
        await card.dial({ span: 1, channel: 1 }, { number: '5559000' });
        ms = performance.now() - t0;
      });
      return ms;
    };
    const pri = await timeDial('pri');
    const cas = await timeDial('cas');
    // PRI: 30 ms × 0.1; CAS: (200 + 7 × 140) ms × 0.1 = 118 ms. A loaded machine only
    // makes either slower, so CAS is held to its floor and PRI only to being quicker.
    assert.ok(cas >= 110, `CAS dial took ${cas} ms`);
    assert.ok(pri < cas, `PRI dial took ${pri} ms, CAS ${cas} ms`);
  });

  it('stopping the card in the middle of a CAS dial fails the dial with ERELEASED instead of leaving it hanging', async () => {
    const card = new SimCard({ name: 'cas', type: 't1', signalling: 'cas', subscribers: [{ number: '5559000' }] });
    await card.start();
    const dial = card.dial({ span: 1, channel: 1 }, { number: '5559000' });
    const release = once(card, 'release');
    await sleep(20);
    await card.stop();
    await assert.rejects(dial, (e: unknown) => e instanceof LineCardError && e.code === 'ERELEASED');
    assert.deepEqual(await release, { channel: { span: 1, channel: 1 }, cause: 16, by: 'local' });
  });

  it('an FXO call rings the port whose number was dialled and reports that number', async () => {
    await withCard({ name: 'fxo', type: 'fxo', ports: 3, numbers: ['5550100', '5550101', '5550102'] }, async (card) => {
      const incoming = once(card, 'incoming');
      card.pstn.placeCall({ from: '2125550147', to: '5550102' });
      const call = await incoming;
      assert.deepEqual(call.channel, { span: 3, channel: 1 });
      assert.equal(call.dialled, '5550102');
      const nowhere = card.pstn.placeCall({ from: '2125550147', to: '5550999' });
      await nowhere.until('released');
      assert.equal(nowhere.releaseCause, 1, 'no port has that number: unallocated');
    });
  });
});

describe('sim PSTN subscribers and congestion', () => {
  it('maps busy, reject and unknown numbers to causes 17, 21 and 1 (by remote), and tone subscribers send audio', async () => {
    await withCard(
      {
        name: 'e1',
        type: 'e1',
        subscribers: [
          { number: '5550001', behaviour: 'busy' },
          { number: '5550002', behaviour: 'reject' },
          { number: '5550003', behaviour: 'answer', answerAfterMs: 10, audio: 'tone' },
        ],
      },
      async (card) => {
        for (const [number, cause] of [['5550001', 17], ['5550002', 21], ['5550404', 1]] as const) {
          const release = once(card, 'release');
          await card.dial({ span: 1, channel: 1 }, { number });
          assert.deepEqual(await release, { channel: { span: 1, channel: 1 }, cause, by: 'remote' });
          while (card.channelState({ span: 1, channel: 1 }) !== 'idle') await sleep(5);
        }
        let frames = 0;
        card.onFrame({ span: 1, channel: 1 }, () => frames++);
        const answered = once(card, 'answer');
        await card.dial({ span: 1, channel: 1 }, { number: '5550003' });
        await answered;
        // 20 ms frames: wait for seven rather than count what came in a fixed time.
        const deadline = Date.now() + 3000;
        while (frames < 7 && Date.now() < deadline) await sleep(20);
        assert.ok(frames >= 7, `received ${frames} tone frames in 3 s`);
        await card.release({ span: 1, channel: 1 });
      },
    );
  });

  it('offers inbound calls from the top channel down, and refuses with cause 34 when every channel is taken', async () => {
    await withCard({ name: 'e1', type: 'e1' }, async (card) => {
      const channels: number[] = [];
      card.on('incoming', ({ channel }) => channels.push(channel.channel));
      const a = card.pstn.placeCall({ from: '1', to: '5550100' });
      await a.until('alerting');
      const b = card.pstn.placeCall({ from: '2', to: '5550100' });
      await b.until('alerting');
      assert.deepEqual(channels, [30, 29]);
    });
    await withCard({ name: 'fxo', type: 'fxo', ports: 2 }, async (card) => {
      const calls = ['1', '2', '3'].map((from) => card.pstn.placeCall({ from, to: '5550100' }));
      await calls[0]!.until('alerting');
      await calls[1]!.until('alerting');
      await calls[2]!.until('released');
      assert.equal(calls[2]!.releaseCause, 34);
    });
  });

  it('a remote alarm takes the span out of service until it is cleared', async () => {
    await withCard({ name: 'e1', type: 'e1' }, async (card) => {
      const alarm = once(card, 'alarm');
      card.pstn.raiseAlarm(1, 'remote-alarm');
      assert.deepEqual(await alarm, { span: 1, alarm: 'remote-alarm', detail: 'raised by the simulated PSTN' });
      assert.ok(card.channels().every((c) => c.state === 'out-of-service'));
      card.pstn.raiseAlarm(1, 'ais');
      card.pstn.clearAlarm(1, 'remote-alarm');
      assert.ok(card.channels().every((c) => c.state === 'out-of-service'), 'still AIS');
      card.pstn.clearAlarm(1, 'ais');
      assert.ok(card.channels().every((c) => c.state === 'idle'));
    });
  });
});

describe('line cards from config', () => {
  const base = { site: { id: 'a' }, sip: { domain: 'example.test' }, extensions: [] };

  it('builds each driver from linecards[] and starts a sim card with no options', async () => {
    const config = configFromData(
      {
        ...base,
        linecards: [
          { driver: 'sim', name: 'pstn', type: 'e1', time_scale: 0.05, subscribers: [{ number: '5559000', behaviour: 'busy' }] },
          { driver: 'serial-at', name: 'gsm', kind: 'cellular', device: '/dev/ttyUSB9' },
        ],
      },
      'test.yaml',
    );
    const cards = createLineCards(config.linecards);
    assert.deepEqual(cards.map((c) => [c.name, c.driver]), [['pstn', 'sim'], ['gsm', 'serial-at']]);
    const sim = cards[0]!;
    await sim.start();
    assert.equal(sim.channels().length, 30);
    // The configured subscriber is busy, and time_scale shortened the signalling.
    const release = new Promise<unknown>((resolve) => sim.once('release', resolve));
    const t0 = performance.now();
    await sim.dial({ span: 1, channel: 1 }, { number: '5559000' });
    assert.ok(performance.now() - t0 < 25, 'PRI SETUP → CALL PROCEEDING at 0.05 × 30 ms');
    assert.deepEqual(await release, { channel: { span: 1, channel: 1 }, cause: 17, by: 'remote' });
    await sim.stop();
  });

  it('names keys that belong to the other driver, misplaced settings and duplicate names', () => {
    assert.deepEqual(
      lineCardProblems([
        { driver: 'sim', name: 'a', type: 'e1', device: '/dev/x' } as never,
        { driver: 'sim', name: 'a', type: 'fxo', signalling: 'cas' },
        { driver: 'serial-at', name: 'b', kind: 'cellular', device: '/dev/y', ports: 2 } as never,
        { driver: 'sim', name: 'c', type: 'fxo', ports: 1, numbers: ['5550100', '5550101'] },
      ]),
      [
        'linecards[0].device: applies to serial-at cards, not sim',
        'linecards[1].name: "a" is already used by linecards[0]',
        'linecards[1]: spans and signalling apply to t1/e1 cards; an fxo card has ports',
        'linecards[2].ports: applies to sim cards, not serial-at',
        'linecards[3].numbers: 2 numbers for 1 ports',
      ],
    );
    assert.throws(() => createLineCard({ driver: 'sim', name: 'x', type: 't1', ports: 2 }), (e: unknown) => e instanceof LineCardError && e.code === 'ECONFIG');
  });

  it('the schema requires type for sim cards and kind and device for serial-at cards', () => {
    assert.throws(() => configFromData({ ...base, linecards: [{ driver: 'sim', name: 'p' }] }, 'f'), /linecards\[0\]\.type: is required/);
    assert.throws(() => configFromData({ ...base, linecards: [{ driver: 'serial-at', name: 'm', kind: 'voice-modem' }] }, 'f'), /linecards\[0\]\.device: is required/);
    assert.throws(() => configFromData({ ...base, linecards: [{ driver: 'isdn', name: 'm' }] }, 'f'), /linecards\[0\]\.driver: must be one of "sim", "serial-at"/);
    assert.deepEqual(configFromData(base, 'f').linecards, []);
  });
});
