import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { WavFormatError } from '../../agent/media/errors.ts';
import { alawToLinear, linearToAlaw, linearToUlaw, ulawToLinear } from '../../agent/media/g711.ts';
import { decodeWav, encodeWav, readWavFile, WavFileWriter, writeWavFile } from '../../agent/media/wav.ts';

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-wav-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function soxInfo(file: string): Record<string, string> {
  const out = execFileSync('sox', ['--i', file], { encoding: 'utf8' });
  const info: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (m) info[m[1]!] = m[2]!;
  }
  return info;
}

/** `sox FILE -n stat` (printed on stderr): rough frequency and RMS amplitude. */
function soxStat(file: string): { frequency: number; rms: number } {
  const out = spawnSync('sox', [file, '-n', 'stat'], { encoding: 'utf8' }).stderr;
  const frequency = Number(/Rough\s+frequency:\s+(\d+)/.exec(out)?.[1]);
  const rms = Number(/RMS\s+amplitude:\s+([\d.]+)/.exec(out)?.[1]);
  return { frequency, rms };
}

const sine = Int16Array.from({ length: 8000 }, (_, i) => Math.round(12000 * Math.sin((2 * Math.PI * 1000 * i) / 8000)));

test('header bytes: RIFF, fmt, (fact,) data for 16-bit PCM and µ-law', () => {
  const wav = encodeWav(Int16Array.of(1, -2));
  assert.equal(
    wav.toString('hex'),
    '52494646' + '28000000' + '57415645' + // RIFF, 40, WAVE
      '666d7420' + '10000000' + '0100' + '0100' + '401f0000' + '803e0000' + '0200' + '1000' + // fmt
      '64617461' + '04000000' + '0100' + 'feff', // data
  );
  // G.711: fmt of 18 bytes (cbSize 0), tag 7, 8 bits; a fact chunk with the sample count.
  const ulaw = encodeWav(Int16Array.of(0, 0, 0), { encoding: 'ulaw' });
  assert.equal(
    ulaw.toString('hex'),
    '52494646' + '36000000' + '57415645' + // RIFF, 54 (58 - 8 + 3 + 1 pad), WAVE
      '666d7420' + '12000000' + '0700' + '0100' + '401f0000' + '401f0000' + '0100' + '0800' + '0000' +
      '66616374' + '04000000' + '03000000' + // fact: 3 samples
      '64617461' + '03000000' + 'ffffff' + '00', // data, 3 bytes, pad byte
  );
});

test('round trip through files sox reads: PCM, µ-law and A-law', async (t) => {
  const dir = tmp(t);
  for (const [encoding, soxEncoding, precision] of [
    ['pcm16', '16-bit Signed Integer PCM', '16-bit'],
    ['ulaw', '8-bit u-law', '14-bit'], // sox names G.711 by the linear bits it carries
    ['alaw', '8-bit A-law', '13-bit'],
  ] as const) {
    const file = path.join(dir, `${encoding}.wav`);
    await writeWavFile(file, sine, { encoding });
    const info = soxInfo(file);
    assert.equal(info['Channels'], '1', encoding);
    assert.equal(info['Sample Rate'], '8000', encoding);
    assert.equal(info['Precision'], precision, encoding);
    assert.equal(info['Sample Encoding'], soxEncoding, encoding);
    assert.match(info['Duration'] ?? '', /= 8000 samples/, encoding);

    const back = await readWavFile(file);
    assert.equal(back.encoding, encoding);
    assert.equal(back.sampleRate, 8000);
    const expected =
      encoding === 'pcm16'
        ? sine
        : sine.map((v) => (encoding === 'ulaw' ? ulawToLinear(linearToUlaw(v)) : alawToLinear(linearToAlaw(v))));
    assert.deepEqual(back.samples, Int16Array.from(expected), encoding);

    // sox hears the same audio in our file: a 1 kHz tone at our level
    // (amplitude 12000 → RMS 12000/√2 of full scale 32768 ≈ 0.259).
    const stat = soxStat(file);
    assert.ok(Math.abs(stat.frequency - 1000) < 30, `${encoding}: ${stat.frequency} Hz`);
    assert.ok(Math.abs(stat.rms - 0.259) < 0.01, `${encoding}: RMS ${stat.rms}`);
  }
});

test('a WAV written by sox (with extra chunks, 16-bit and µ-law) is read', async (t) => {
  const dir = tmp(t);
  const pcm = path.join(dir, 'sox.wav');
  const ulaw = path.join(dir, 'sox-ulaw.wav');
  execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', pcm, 'synth', '0.5', 'sine', '440'], { stdio: 'ignore' });
  // -D: no dither, so the µ-law copy is exactly the 16-bit one quantised.
  execFileSync('sox', ['-D', pcm, '-e', 'u-law', ulaw], { stdio: 'ignore' });
  const a = await readWavFile(pcm);
  const b = await readWavFile(ulaw);
  assert.equal(a.samples.length, 4000);
  assert.equal(b.samples.length, 4000);
  assert.equal(b.encoding, 'ulaw');
  // The µ-law copy is exactly the 16-bit one through our encoder and decoder.
  assert.deepEqual(b.samples, a.samples.map((v) => ulawToLinear(linearToUlaw(v))));
});

test('not a WAV, or a format we do not play, is a typed error', () => {
  assert.throws(() => decodeWav(Buffer.from('hello world, not riff')), WavFormatError);
  const float = encodeWav(Int16Array.of(0, 0));
  float.writeUInt16LE(3, 20); // IEEE float tag
  assert.throws(() => decodeWav(float), (e: unknown) => e instanceof WavFormatError && /tag 3/.test(e.message));
});

test('streaming writer: nothing under the final name until close; then a complete, fsynced file', async (t) => {
  const dir = tmp(t);
  const final = path.join(dir, 'message.wav');
  const writer = new WavFileWriter(final, { encoding: 'ulaw', bufferBytes: 1000 });
  await writer.open();
  for (let i = 0; i < 50; i++) writer.write(sine.subarray(i * 160, i * 160 + 160));
  writer.writeEncoded(Uint8Array.of(0xff)); // odd length: the data chunk gets a pad byte
  await writer.flush();
  assert.deepEqual(readdirSync(dir).filter((f) => f === 'message.wav'), []);
  assert.equal(readdirSync(dir).length, 1); // the temporary file
  const result = await writer.close();
  assert.deepEqual(readdirSync(dir), ['message.wav']);
  assert.equal(result.samples, 8001);
  assert.equal(readFileSync(final).length % 2, 0);
  const back = await readWavFile(final);
  assert.equal(back.samples.length, 8001);
  assert.match(soxInfo(final)['Duration'] ?? '', /= 8001 samples/);
});

test('streaming writer: abort leaves nothing behind', async (t) => {
  const dir = tmp(t);
  const writer = new WavFileWriter(path.join(dir, 'gone.wav'));
  await writer.open();
  writer.write(sine);
  await writer.abort();
  assert.deepEqual(readdirSync(dir), []);
});

test('a file whose writer died before close (sizes 0) still reads what is there', () => {
  const wav = encodeWav(sine.subarray(0, 100));
  wav.writeUInt32LE(0, 4);
  wav.writeUInt32LE(0, 40);
  const back = decodeWav(wav);
  assert.equal(back.samples.length, 100);
});
