// Voicemail in the test process over real parts: a real SQLite store in a fresh
// state directory, the real Voicemail subsystem, and a MediaEngine whose sessions
// talk RTP over loopback — one session is the agent's side of the call, the other
// the caller's phone (speech from espeak-ng, RFC 4733 digits).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import type { MailboxConfig, VoicemailConfig } from '../../agent/config/types.ts';
import { EventBus, type AgentEvents } from '../../agent/events/bus.ts';
import { MediaEngine } from '../../agent/media/engine.ts';
import type { RtpSession } from '../../agent/media/rtp-session.ts';
import { decodeWav } from '../../agent/media/wav.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { goertzelCoefficient, goertzelPower, toneEnergy } from '../../agent/media/goertzel.ts';
import { buildPrompts, resample, trimSilence } from '../../agent/voicemail/prompts/build.ts';
import type { ReconcileReport } from '../../agent/voicemail/store/reconcile.ts';
import { Voicemail, type VoicemailDeps } from '../../agent/voicemail/voicemail.ts';

const run = promisify(execFile);

export const TEST_VOICEMAIL_SETTINGS: VoicemailConfig = {
  format: 'ulaw',
  pin_attempts: 3,
  lockout: { failures: 5, duration: 900 },
  mwi: { unsolicited: true, min_expires: 60, max_expires: 3600 },
};

export function mailbox(overrides: Partial<MailboxConfig> = {}): MailboxConfig {
  return { pin: '1234', max_messages: 100, max_message_seconds: 60, min_message_seconds: 1, silence_seconds: 1.5, ...overrides };
}

/** 8 kHz speech from espeak-ng. */
export async function speech(text: string): Promise<Int16Array> {
  const { stdout } = await run('espeak-ng', ['-v', 'en-us', '-s', '160', '--stdout', text], { encoding: 'buffer', maxBuffer: 32 * 1024 * 1024 });
  const wav = decodeWav(stdout);
  return resample(wav.samples, wav.sampleRate, 8000);
}

export interface VoicemailHarness {
  vm: Voicemail;
  /** What the startup scan repaired. */
  report: ReconcileReport;
  stateDir: string;
  db: Database;
  bus: EventBus;
  events: Array<{ name: keyof AgentEvents; payload: unknown }>;
  engine: MediaEngine;
  /** A call: the agent's session and the phone's, wired to each other with telephone-event 101. */
  call(): Promise<{ agent: RtpSession; phone: RtpSession }>;
  close(): Promise<void>;
}

export async function startVoicemail(
  t: TestContext | undefined,
  opts: { mailboxes: Record<string, MailboxConfig>; settings?: Partial<VoicemailConfig>; stateDir?: string; extra?: Partial<VoicemailDeps> },
): Promise<VoicemailHarness> {
  await buildPrompts();
  const stateDir = opts.stateDir ?? (await mkdtemp(path.join(os.tmpdir(), 'bl-vm-')));
  const logger = pino({ level: process.env['VM_TEST_LOG'] ?? 'silent' });
  const db = await Database.open(path.join(stateDir, 'branchline.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db, { coalesceMs: 2 });
  const bus = new EventBus(logger);
  const events: VoicemailHarness['events'] = [];
  bus.on('voicemail.deposited', (payload) => events.push({ name: 'voicemail.deposited', payload }));
  bus.on('voicemail.counts', (payload) => events.push({ name: 'voicemail.counts', payload }));
  const vm = new Voicemail({
    settings: { ...TEST_VOICEMAIL_SETTINGS, ...opts.settings },
    extensions: Object.entries(opts.mailboxes).map(([number, voicemail]) => ({ number, password: 'secret', voicemail })),
    stateDir,
    domain: 'branchline.test',
    logger,
    bus,
    db,
    committer,
    menuTimeoutMs: 4000,
    digitTimeoutMs: 2000,
    ...opts.extra,
  });
  const report = await vm.start();
  const engine = new MediaEngine({ bindAddress: '127.0.0.1' }, logger);
  engine.start();
  let closed = false;
  const harness: VoicemailHarness = {
    vm,
    report,
    stateDir,
    db,
    bus,
    events,
    engine,
    async call() {
      const agent = await engine.createSession({ telephoneEventPt: 101 });
      const phone = await engine.createSession({ telephoneEventPt: 101 });
      agent.setRemote({ address: '127.0.0.1', port: phone.localPort });
      phone.setRemote({ address: '127.0.0.1', port: agent.localPort });
      return { agent, phone };
    },
    async close() {
      if (closed) return;
      closed = true;
      vm.stop();
      await engine.stop();
      await committer.idle();
      await db.close();
      if (opts.stateDir === undefined) await rm(stateDir, { recursive: true, force: true });
    },
  };
  t?.after(() => harness.close());
  return harness;
}

/** Collects what a session hears (decoded PCM) until stopped. */
export function listen(session: RtpSession): { samples(): Int16Array; stop(): void } {
  const chunks: Int16Array[] = [];
  const onAudio = (pcm: Int16Array): void => {
    chunks.push(pcm.slice());
  };
  session.on('audio', onAudio);
  return {
    samples() {
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const out = new Int16Array(total);
      let o = 0;
      for (const c of chunks) {
        out.set(c, o);
        o += c.length;
      }
      return out;
    },
    stop() {
      session.off('audio', onAudio);
    },
  };
}

export function rms(samples: Int16Array): number {
  let sum = 0;
  for (const v of samples) sum += v * v;
  return samples.length === 0 ? 0 : Math.sqrt(sum / samples.length);
}

/**
 * The best normalised cross-correlation of `recorded` against `source` over lags
 * 0..maxLag samples either way, computed on 20 ms RMS envelopes first (cheap) and
 * then on the samples around the best envelope lag.
 */
export function bestCorrelation(source: Int16Array, recorded: Int16Array, maxLag = 4000): { correlation: number; lag: number } {
  let best = { correlation: -1, lag: 0 };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let dot = 0;
    let ea = 0;
    let eb = 0;
    // Sparse pass: every 4th sample is enough to find the peak region.
    for (let i = Math.max(0, -lag); i < source.length && i + lag < recorded.length; i += 4) {
      const a = source[i]!;
      const b = recorded[i + lag]!;
      dot += a * b;
      ea += a * a;
      eb += b * b;
    }
    const c = ea > 0 && eb > 0 ? dot / Math.sqrt(ea * eb) : 0;
    if (c > best.correlation) best = { correlation: c, lag };
  }
  // Exact value at the peak.
  let dot = 0;
  let ea = 0;
  let eb = 0;
  for (let i = Math.max(0, -best.lag); i < source.length && i + best.lag < recorded.length; i++) {
    const a = source[i]!;
    const b = recorded[i + best.lag]!;
    dot += a * b;
    ea += a * a;
    eb += b * b;
  }
  return { correlation: ea > 0 && eb > 0 ? dot / Math.sqrt(ea * eb) : 0, lag: best.lag };
}

/**
 * Resolves when the phone has heard the record tone (1 kHz) end: a caller speaks
 * "after the tone". Rejects after `timeoutMs`.
 */
export function afterBeep(session: RtpSession, timeoutMs = 15_000): Promise<void> {
  const coefficient = goertzelCoefficient(1000, 8000);
  return new Promise((resolve, reject) => {
    let toneFrames = 0;
    const done = (err?: Error): void => {
      clearTimeout(timer);
      session.off('audio', onAudio);
      if (err) reject(err);
      else resolve();
    };
    const onAudio = (pcm: Int16Array): void => {
      let total = 0;
      for (const v of pcm) total += v * v;
      const tone = total > 0 ? toneEnergy(goertzelPower(pcm, pcm.length, coefficient), pcm.length) / total : 0;
      if (tone > 0.8 && rms(pcm) > 1000) toneFrames++;
      else if (toneFrames >= 5) done();
      else toneFrames = 0;
    };
    const timer = setTimeout(() => done(new Error('no record tone heard')), timeoutMs);
    session.on('audio', onAudio);
  });
}

/** espeak-ng speech with its leading and trailing silence cut, as a caller would speak it. */
export async function trimmedSpeech(text: string): Promise<Int16Array> {
  return trimSilence(await speech(text), 8000);
}
