// The line-card contract against the simulated card: T1 (PRI and CAS), E1, FXO.
// The far end is the card's own simulated PSTN.
import { SimCard, type SimCardOptions } from '../../drivers/sim/sim-card.ts';
import type { PstnCall } from '../../drivers/sim/pstn-call.ts';
import { ToneSource } from '../../agent/media/tone-generator.ts';
import { lineCardContract, type ContractHarness, type FarEndCall } from '../helpers/line-card-contract.ts';

function farEnd(call: PstnCall): FarEndCall {
  let digits = '';
  call.on('digits', (d) => (digits += d));
  call.record();
  return {
    answer: async () => {
      call.answer();
      await call.until('connected');
    },
    hangup: async () => call.hangup(),
    startAudio: () => call.playSource(new ToneSource({ frequencies: [1000], levelDbm0: -13, cadenceMs: [] })),
    framesReceived: () => call.stats.framesReceived,
    audibleFramesReceived: () => call.stats.audibleFramesReceived,
    digitsReceived: () => digits,
    sendDigits: (d) => call.sendDigits(d),
    ended: () => call.until('released'),
  };
}

function simHarness(options: Omit<SimCardOptions, 'name'>, alerting: boolean, callerName: boolean): () => Promise<ContractHarness> {
  return async () => {
    const card = new SimCard({ name: 'sim-test', timeScale: 0.02, ...options, subscribers: [{ number: '5559000', behaviour: 'ring' }] });
    const span = 1;
    return {
      card,
      channel: { span, channel: 1 },
      capabilities: { audio: true, callerName, alerting, digitsOut: true, digitsIn: true },
      dialNumber: '5559000',
      callIn: async (from, to) => farEnd(card.pstn.placeCall({ from: from.number, name: from.name, to })),
      nextOutbound: () =>
        new Promise((resolve) => card.pstn.once('call', (call) => resolve(Object.assign(farEnd(call), { number: call.to })))),
      takeDown: async () => {
        for (let s = 1; s <= card.pstn.spanCount(); s++) card.pstn.pullCable(s);
      },
      bringUp: async () => {
        for (let s = 1; s <= card.pstn.spanCount(); s++) card.pstn.plugCable(s);
      },
      close: async () => {},
    };
  };
}

lineCardContract('sim T1 PRI', simHarness({ type: 't1', signalling: 'pri' }, true, true));
lineCardContract('sim T1 CAS', simHarness({ type: 't1', signalling: 'cas' }, false, false));
lineCardContract('sim E1', simHarness({ type: 'e1' }, true, true));
lineCardContract('sim FXO', simHarness({ type: 'fxo', ports: 2, numbers: ['5550100', '5550101'] }, true, true));
