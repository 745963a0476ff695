// The serial AT driver against the modem emulator on a real pseudo-terminal pair
// (socat): the line-card contract for a voice modem and a cellular module, then the
// exact bytes the driver writes, caller ID forms, refusals, and the device being
// unplugged and plugged back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SerialAtCard } from '../../drivers/serial-at/serial-at-card.ts';
import type { LineCardEvents } from '../../drivers/types.ts';
import { ModemEmulator, type EmulatedKind } from '../helpers/modem-emulator.ts';
import { lineCardContract, type ContractHarness, type FarEndCall } from '../helpers/line-card-contract.ts';

const CH = { span: 1, channel: 1 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function makeCard(emu: ModemEmulator, kind: EmulatedKind): SerialAtCard {
  return new SerialAtCard({
    name: `${kind}-test`,
    kind,
    device: emu.hostPath,
    number: '5550100',
    commandTimeoutMs: 1500,
    dialTimeoutMs: 10_000,
    reopenMinMs: 100,
    reopenMaxMs: 400,
    ringGapMs: 600,
  });
}

function once<K extends keyof LineCardEvents>(card: SerialAtCard, event: K, timeoutMs = 5000): Promise<LineCardEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
    card.once(event, ((payload: LineCardEvents[K][0]) => {
      clearTimeout(timer);
      resolve(payload);
    }) as never);
  });
}

function farEnd(emu: ModemEmulator): FarEndCall {
  return {
    answer: async () => emu.answerCall(),
    hangup: async () => emu.hangupRemote(),
    startAudio: () => emu.startAudio(),
    framesReceived: () => emu.framesReceived(),
    audibleFramesReceived: () => emu.audibleFramesReceived(),
    digitsReceived: () => emu.digitsReceived(),
    sendDigits: (digits) => {
      for (const d of digits) emu.sendDigitEvent(d);
    },
    ended: async () => {
      const deadline = Date.now() + 5000;
      while (emu.state !== 'idle' && Date.now() < deadline) await sleep(10);
      assert.equal(emu.state, 'idle');
    },
  };
}

function serialHarness(kind: EmulatedKind): () => Promise<ContractHarness> {
  return async () => {
    const emu = await ModemEmulator.start({ kind });
    const card = makeCard(emu, kind);
    return {
      card,
      channel: CH,
      capabilities: { audio: kind === 'voice-modem', callerName: true, alerting: kind === 'cellular', digitsOut: true, digitsIn: kind === 'voice-modem' },
      dialNumber: '5559000',
      callIn: async (from) => {
        emu.ring({ number: from.number, name: from.name });
        return farEnd(emu);
      },
      nextOutbound: () => new Promise((resolve) => emu.once('dial', (number) => resolve(Object.assign(farEnd(emu), { number })))),
      takeDown: () => emu.unplug(),
      bringUp: () => emu.plug(),
      close: () => emu.close(),
    };
  };
}

lineCardContract('serial-at voice modem (emulator on a pty)', serialHarness('voice-modem'));
lineCardContract('serial-at cellular module (emulator on a pty)', serialHarness('cellular'));

describe('serial-at voice modem: bytes on the wire', () => {
  let emu: ModemEmulator;
  let card: SerialAtCard;
  before(async () => {
    emu = await ModemEmulator.start({ kind: 'voice-modem' });
    card = makeCard(emu, 'voice-modem');
    await card.start();
  });
  after(async () => {
    await card.stop();
    await emu.close();
  });

  it('sets the modem up with exactly these commands', () => {
    assert.equal(emu.written(), 'ATZ\rATE0\rAT+FCLASS=8\rAT+VCID=1\rAT+VSM=4,8000\r');
  });

  it('answers with ATA, streams audio with AT+VTR, ends it with DLE ETX and hangs up with ATH', async () => {
    emu.clearWritten();
    const incoming = once(card, 'incoming');
    emu.ring({ number: '2125550147', name: 'ALICE' });
    await incoming;
    await card.answer(CH);
    const digits = once(card, 'digits');
    emu.sendDigitEvent('7');
    assert.deepEqual(await digits, { channel: CH, digits: '7' });
    const frame = new Uint8Array(160).fill(0x55);
    frame[0] = 0x10; // a DLE in the audio must be doubled on the wire
    assert.equal(card.writeFrame(CH, frame), true);
    await card.release(CH);
    const shielded = Buffer.concat([Buffer.from([0x10, 0x10]), Buffer.alloc(159, 0x55)]).toString('latin1');
    assert.equal(emu.written(), `ATA\rAT+VTR\r${shielded}\x10\x03ATH\r`);
  });

  it('dials with ATDT, reports busy as cause 17, and aborts a dial in progress when released', async () => {
    emu.clearWritten();
    const dialled = new Promise((r) => emu.once('dial', r));
    await card.dial(CH, { number: '5559000' });
    await dialled;
    const release = once(card, 'release');
    emu.busy();
    assert.deepEqual(await release, { channel: CH, cause: 17, by: 'remote' });
    await until(() => card.channelState(CH) === 'idle' && emu.written().endsWith('ATH\r'), 'the line back to idle after ATH');
    assert.equal(emu.written(), 'ATDT5559000\rATH\r');

    emu.clearWritten();
    await card.dial(CH, { number: '5559001' });
    await card.release(CH);
    // The CR aborts the dial (the modem answers NO CARRIER), then ATH.
    assert.equal(emu.written(), 'ATDT5559001\r\rATH\r');
  });

  it('reports a withheld number as restricted, without a number', async () => {
    const incoming = once(card, 'incoming');
    emu.ring({ withheld: true });
    const call = await incoming;
    assert.deepEqual(call.callerId, { presentation: 'restricted' });
    // The caller gives up: the rings stop and the driver reports the call gone.
    const release = once(card, 'release');
    emu.stopRinging();
    assert.deepEqual(await release, { channel: CH, cause: 16, by: 'remote' });
  });
});

describe('serial-at: the caller hangs up just as the line is answered', () => {
  it('answer() fails with ERELEASED and the call is released by remote with cause 16', async () => {
    const emu = await ModemEmulator.start({ kind: 'cellular' });
    const card = makeCard(emu, 'cellular');
    try {
      await card.start();
      const incoming = once(card, 'incoming');
      emu.ring({ number: '2125550147', name: 'ALICE' });
      await incoming;
      emu.stopRinging(); // gone before our ATA arrives: the module answers NO CARRIER
      const release = once(card, 'release');
      await assert.rejects(card.answer(CH), { code: 'ERELEASED' });
      assert.deepEqual(await release, { channel: CH, cause: 16, by: 'remote' });
    } finally {
      await card.stop();
      await emu.close();
    }
  });
});

describe('serial-at voice modem without AT+VCID', () => {
  it('falls back to AT#CID=1 and still reads caller ID', async () => {
    const emu = await ModemEmulator.start({ kind: 'voice-modem', vcid: false });
    const card = makeCard(emu, 'voice-modem');
    try {
      await card.start();
      assert.equal(emu.written(), 'ATZ\rATE0\rAT+FCLASS=8\rAT+VCID=1\rAT#CID=1\rAT+VSM=4,8000\r');
      const incoming = once(card, 'incoming');
      emu.ring({ number: '2125550199', name: 'CAROL' });
      assert.deepEqual((await incoming).callerId, { number: '2125550199', name: 'CAROL', presentation: 'allowed' });
    } finally {
      await card.stop();
      await emu.close();
    }
  });
});

describe('serial-at cellular module: bytes on the wire', () => {
  let emu: ModemEmulator;
  let card: SerialAtCard;
  before(async () => {
    emu = await ModemEmulator.start({ kind: 'cellular' });
    card = makeCard(emu, 'cellular');
    await card.start();
  });
  after(async () => {
    await card.stop();
    await emu.close();
  });

  it('sets the module up with exactly these commands', () => {
    assert.equal(emu.written(), 'ATE0\rAT+CMEE=2\rAT+CLIP=1\r');
  });

  it('dials ATD…; then follows the call with AT+CLCC until it is answered, sends DTMF with AT+VTS and hangs up with ATH', async () => {
    emu.clearWritten();
    await card.dial(CH, { number: '+15559000' });
    assert.equal(emu.written(), 'ATD+15559000;\r');
    await once(card, 'alerting');
    const answered = once(card, 'answer');
    emu.answerCall();
    await answered;
    await card.sendDigits(CH, '42');
    await card.release(CH);
    const commands = emu.commands();
    assert.ok(commands.includes('AT+CLCC'));
    assert.deepEqual(commands.filter((c) => c !== 'AT+CLCC'), ['ATD+15559000;', 'AT+VTS=4', 'AT+VTS=2', 'ATH']);
    assert.equal(emu.digitsReceived(), '42');
  });

  it('reads +CLIP caller ID, withheld numbers, and NO CARRIER as the far end hanging up', async () => {
    let incoming = once(card, 'incoming');
    emu.ring({ withheld: true });
    assert.deepEqual((await incoming).callerId, { presentation: 'restricted' });
    await card.release(CH);
    emu.stopRinging();
    await sleep(700); // let the rings' gap pass so the next ring is a new call

    incoming = once(card, 'incoming');
    emu.ring({ number: '+442071234567', name: 'DAVE' });
    assert.deepEqual((await incoming).callerId, { number: '+442071234567', name: 'DAVE', presentation: 'allowed' });
    await card.answer(CH);
    const release = once(card, 'release');
    emu.hangupRemote();
    assert.deepEqual(await release, { channel: CH, cause: 16, by: 'remote' });
  });

  it('reports a busy number as cause 17', async () => {
    await until(() => card.channelState(CH) === 'idle', 'the line idle after the last call');
    await card.dial(CH, { number: '5559002' });
    const release = once(card, 'release');
    emu.busy();
    assert.deepEqual(await release, { channel: CH, cause: 17, by: 'remote' });
  });
});

describe('serial-at: device unplugged and back', () => {
  it('raises device-lost, takes the line out of service, keeps reopening, and sets the device up again when it returns', async () => {
    const emu = await ModemEmulator.start({ kind: 'voice-modem' });
    const card = makeCard(emu, 'voice-modem');
    try {
      await card.start();
      const alarm = once(card, 'alarm');
      await emu.unplug();
      assert.equal((await alarm).alarm, 'device-lost');
      assert.equal(card.channelState(CH), 'out-of-service');
      await sleep(600); // several reopen attempts against a missing device
      assert.equal(card.channelState(CH), 'out-of-service');
      const cleared = once(card, 'alarm-cleared', 8000);
      await emu.plug();
      await cleared;
      assert.equal(card.channelState(CH), 'idle');
      // The modem came back fresh (echo on): the driver set it up again.
      assert.equal(emu.written(), 'ATZ\rATE0\rAT+FCLASS=8\rAT+VCID=1\rAT+VSM=4,8000\r');
    } finally {
      await card.stop();
      await emu.close();
    }
  });

  it('starts with the device missing, reports it, and comes up when it appears', async () => {
    const emu = await ModemEmulator.start({ kind: 'cellular' });
    await emu.unplug();
    const card = makeCard(emu, 'cellular');
    try {
      const alarm = once(card, 'alarm');
      await card.start();
      assert.equal((await alarm).alarm, 'device-lost');
      assert.deepEqual(card.spans()[0]!.alarms, ['device-lost']);
      const cleared = once(card, 'alarm-cleared', 8000);
      await emu.plug();
      await cleared;
      assert.equal(card.channelState(CH), 'idle');
    } finally {
      await card.stop();
      await emu.close();
    }
  });
});
