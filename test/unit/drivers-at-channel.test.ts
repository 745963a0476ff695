// The AT command channel's framing rules, byte for byte: one command in flight,
// replies matched to it, unsolicited lines routed around it, timeouts that name what
// was awaited, and the switch to voice data in the middle of a read. The device side
// is a recorder of what the channel writes and a feeder of what a modem would answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AtChannel, AtCommandError } from '../../drivers/serial-at/at-channel.ts';
import { parseClip, splitAtParams, VoiceCallerIdBlock } from '../../drivers/serial-at/caller-id.ts';
import { DleDecoder, dleEncode } from '../../drivers/serial-at/dle.ts';
import { LineCardError } from '../../drivers/types.ts';

function channel(): { at: AtChannel; written: string[]; urcs: string[]; feed: (s: string | Buffer) => void } {
  const written: string[] = [];
  const urcs: string[] = [];
  const at = new AtChannel('modem', (b) => written.push(b.toString('latin1')), (line) => urcs.push(line));
  return { at, written, urcs, feed: (s) => at.feed(typeof s === 'string' ? Buffer.from(s, 'latin1') : s) };
}

describe('AtChannel', () => {
  it('keeps one command in flight and writes the next only after the reply', async () => {
    const { at, written, feed } = channel();
    const first = at.command('ATE0', { timeoutMs: 1000 });
    const second = at.command('AT+CLIP=1', { timeoutMs: 1000 });
    assert.deepEqual(written, ['ATE0\r']);
    feed('ATE0\r\r\nOK\r\n'); // echo of the command is not a reply line
    assert.deepEqual(await first, { final: 'OK', lines: [] });
    assert.deepEqual(written, ['ATE0\r', 'AT+CLIP=1\r']);
    feed('\r\nOK\r\n');
    await second;
  });

  it('collects information lines, split across reads, for the command that asked', async () => {
    const { at, feed, urcs } = channel();
    const reply = at.command('AT+CLCC', { timeoutMs: 1000, info: '+CLCC:' });
    feed('\r\n+CLCC: 1,0,3,0,0,"555",1');
    feed('29\r\n\r\nRING\r\n\r\nOK\r\n');
    assert.deepEqual(await reply, { final: 'OK', lines: ['+CLCC: 1,0,3,0,0,"555",129'] });
    assert.deepEqual(urcs, ['RING']);
  });

  it('routes NO CARRIER to the router unless the command in flight makes a call', async () => {
    const { at, feed, urcs } = channel();
    const poll = at.command('AT+CLCC', { timeoutMs: 1000, info: '+CLCC:' });
    feed('\r\nNO CARRIER\r\n\r\nOK\r\n');
    await poll;
    assert.deepEqual(urcs, ['NO CARRIER']);
    const dial = at.command('ATDT555', { timeoutMs: 1000, success: ['VCON'], progress: true });
    feed('\r\nBUSY\r\n');
    await assert.rejects(dial, (err: unknown) => err instanceof AtCommandError && err.final === 'BUSY' && err.command === 'ATDT555');
  });

  it('fails ERROR and +CME ERROR replies with the command named', async () => {
    const { at, feed } = channel();
    const a = at.command('AT+VCID=1', { timeoutMs: 1000 });
    feed('\r\nERROR\r\n');
    await assert.rejects(a, { code: 'EATREPLY', message: 'AT+VCID=1 failed: ERROR' });
    const b = at.command('AT+VTS=1', { timeoutMs: 1000 });
    feed('\r\n+CME ERROR: operation not allowed\r\n');
    await assert.rejects(b, { message: 'AT+VTS=1 failed: +CME ERROR: operation not allowed' });
  });

  it('drops a run of noise without line ends and still reads the reply after it', async () => {
    const { at, feed } = channel();
    const reply = at.command('AT', { timeoutMs: 1000 });
    feed(Buffer.alloc(64 * 1024, 0x41)); // a device babbling with no CR or LF
    feed('\r\nOK\r\n');
    assert.deepEqual(await reply, { final: 'OK', lines: [] });
  });

  it('times out with an error that names the command and the results it waited for, then moves on', async () => {
    const { at, written, feed } = channel();
    const silent = at.command('AT+VTR', { timeoutMs: 30, success: ['CONNECT'] });
    const next = at.command('ATH', { timeoutMs: 1000 });
    await assert.rejects(silent, (err: unknown) => {
      assert.ok(err instanceof LineCardError);
      assert.equal(err.code, 'ETIMEOUT');
      assert.equal(err.message, 'modem: no reply to AT+VTR within 30 ms (waiting for CONNECT or ERROR)');
      return true;
    });
    assert.deepEqual(written, ['AT+VTR\r', 'ATH\r']);
    feed('\r\nOK\r\n');
    await next;
  });

  it('enters the data state right after CONNECT, even mid-read, and leaves it at DLE ETX', async () => {
    const { at, feed, urcs } = channel();
    const frames: Uint8Array[] = [];
    const events: string[] = [];
    const decoder = new DleDecoder((f) => frames.push(Uint8Array.from(f)), (c) => events.push(c));
    const vtr = at.command('AT+VTR', { timeoutMs: 1000, success: ['CONNECT'], data: (b) => decoder.feed(b) });
    const audio = Buffer.alloc(160, 0x7f);
    audio[3] = 0x10;
    // CONNECT, audio with a shielded DLE and a DTMF event, then the end of data and an OK — one read.
    feed(Buffer.concat([Buffer.from('\r\nCONNECT\r\n'), dleEncode(audio.subarray(0, 100)), Buffer.from([0x10, 0x35]), dleEncode(audio.subarray(100)), Buffer.from([0x10, 0x03]), Buffer.from('\r\nRING\r\n')]));
    await vtr;
    assert.equal(frames.length, 1);
    assert.deepEqual(Buffer.from(frames[0]!), audio);
    assert.deepEqual(events, ['5']);
    assert.equal(at.inData, false);
    assert.deepEqual(urcs, ['RING']);
  });

  it('fails every waiting command with EDEVICE when the device is gone', async () => {
    const { at } = channel();
    const a = at.command('ATZ', { timeoutMs: 1000 });
    const b = at.command('ATE0', { timeoutMs: 1000 });
    at.close('device unplugged');
    await assert.rejects(a, { code: 'EDEVICE', message: 'modem: ATZ: device unplugged' });
    await assert.rejects(b, { code: 'EDEVICE' });
    await assert.rejects(at.command('ATH', { timeoutMs: 1000 }), { code: 'EDEVICE' });
  });
});

describe('caller ID', () => {
  it('reads +CLIP with name, withheld and unavailable numbers', () => {
    assert.deepEqual(parseClip('+CLIP: "+15551234567",145,"",,"Alice Smith",0'), { number: '+15551234567', name: 'Alice Smith', presentation: 'allowed' });
    assert.deepEqual(parseClip('+CLIP: "5551234",129'), { number: '5551234', presentation: 'allowed' });
    assert.deepEqual(parseClip('+CLIP: "",128,"",,"",1'), { presentation: 'restricted' });
    assert.deepEqual(parseClip('+CLIP: "",128,,,,2'), { presentation: 'unavailable' });
    assert.equal(parseClip('+CLCC: 1,0,0,0,0'), undefined);
    assert.deepEqual(splitAtParams('"a,b",1,,"c"'), ['a,b', '1', '', 'c']);
  });

  it('reads a formatted voice-modem block, with P (private) and O (out of area)', () => {
    const block = new VoiceCallerIdBlock();
    for (const line of ['DATE = 1122', 'TIME = 0930', 'NMBR = 2125550147', 'NAME = ALICE']) assert.equal(block.take(line), true);
    assert.equal(block.take('RING'), false);
    assert.deepEqual(block.callerId(), { number: '2125550147', name: 'ALICE', presentation: 'allowed' });
    block.reset();
    block.take('NMBR = P');
    assert.deepEqual(block.callerId(), { presentation: 'restricted' });
    block.reset();
    block.take('NMBR = O');
    assert.deepEqual(block.callerId(), { presentation: 'unavailable' });
  });
});
