// Blind transfer between real desk phones (baresip 1.0, its `transfer` command,
// which sends a REFER): Alice calls Bob, Bob transfers Alice to Carol, Carol
// answers, and Carol hears Alice's tone (440 Hz) — the transferee's audio reaches
// the target, in both media policies. Bob's phone is out of the call; the call
// record keeps Alice as the caller and shows Carol's leg answered.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { startBaresip, type BaresipHandle } from '../helpers/baresip.ts';
import { SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = [
  { number: '1001', name: 'Alice', password: 'alice-secret' },
  { number: '1002', name: 'Bob', password: 'bob-secret' },
  { number: '1003', name: 'Carol', password: 'carol-secret' },
];

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout + stderr)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Rough frequency and RMS amplitude of a WAV (`sox FILE -n stat`). */
async function measure(file: string): Promise<{ frequency: number; rms: number }> {
  const out = await run('sox', [file, '-n', 'stat']);
  const num = (label: string): number => Number(new RegExp(`${label}:\\s+(-?[0-9.]+)`).exec(out)?.[1] ?? Number.NaN);
  return { frequency: num('Rough\\s+frequency'), rms: num('RMS\\s+amplitude') };
}

interface LegRow {
  party: string;
  answered_at: number | null;
}

for (const policy of ['anchored', 'direct'] as const) {
  describe(`baresip phones: Bob transfers Alice to Carol (${policy} media)`, () => {
    let agent: AgentHandle;
    let work: string;
    const phones: BaresipHandle[] = [];

    before(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'branchline-transfer-'));
      for (const [name, hz] of [['alice', 440], ['bob', 1000], ['carol', 700]] as const) {
        await run('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', path.join(work, `${name}.wav`), 'synth', '30', 'sine', String(hz)]);
      }
      agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy, bind_address: '127.0.0.1' } } });
    });

    after(async () => {
      for (const p of phones) await p.cleanup();
      await agent?.cleanup();
      await rm(work, { recursive: true, force: true });
    });

    async function phone(user: string, password: string, name: string): Promise<BaresipHandle> {
      const recordDir = path.join(work, `rec-${name}`);
      await mkdir(recordDir, { recursive: true });
      const p = await startBaresip({
        account: { user, password, registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 600 },
        audioFile: path.join(work, `${name}.wav`),
        recordDir,
      });
      phones.push(p);
      await p.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
      return p;
    }

    test('Carol answers the transferred call and hears Alice', async () => {
      const alice = await phone('1001', 'alice-secret', 'alice');
      const bob = await phone('1002', 'bob-secret', 'bob');
      const carol = await phone('1003', 'carol-secret', 'carol');

      assert.ok((await alice.command('dial', `sip:1002@${agent.domain}`)).ok);
      await bob.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 5000);
      assert.ok((await bob.command('accept')).ok);
      await alice.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 5000);
      await sleep(1000);

      const transferred = await bob.command('transfer', `sip:1003@${agent.domain}`);
      assert.ok(transferred.ok, `transfer accepted by baresip: ${transferred.data}`);
      await carol.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 5000);
      assert.ok((await carol.command('accept')).ok);
      await carol.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 5000);
      // Bob is out: the agent's final NOTIFY (or its BYE) closes his call.
      await bob.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 10_000);
      await agent.waitForLog((l) => l['event'] === 'call.transferred', 5000);

      await sleep(3000); // Alice and Carol talk
      await alice.command('hangup');
      await carol.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 5000);
      await sleep(300); // sndfile closes its files on teardown

      const carolDir = path.join(work, 'rec-carol');
      const heard = (await readdir(carolDir)).filter((f) => f.endsWith('.wav') && f.includes('-dec'));
      assert.equal(heard.length, 1, `one recording of what Carol heard: ${JSON.stringify(heard)}`);
      const m = await measure(path.join(carolDir, heard[0] as string));
      assert.ok(Math.abs(m.frequency - 440) < 40 && m.rms > 0.1, `Carol hears Alice's 440 Hz: ${JSON.stringify(m)}`);

      const ended = await agent.waitForLog((l) => l['event'] === 'call.ended', 5000);
      assert.equal(ended['disposition'], 'answered');
      await sleep(100);
      const db = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
      try {
        const calls = db.prepare('SELECT caller FROM calls').all() as Array<{ caller: string }>;
        assert.deepEqual(calls.map((c) => c.caller), ['1001'], 'one call, Alice its caller');
        const legs = db.prepare('SELECT party, answered_at FROM call_legs ORDER BY leg').all() as unknown as LegRow[];
        assert.ok(legs.some((l) => l.party === '1003' && l.answered_at !== null), `Carol's leg answered: ${JSON.stringify(legs)}`);
      } finally {
        db.close();
      }
    });
  });
}
