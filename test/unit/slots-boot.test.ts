// After the switch: the boot step counts starts of the slot on trial, post-boot verify
// commits it when SIP answers, the store is migrated and the phones are back — and
// rolls it back, pointing the boot at the previous slot, when any of that fails.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import type { AgentConfig } from '../../agent/config/types.ts';
import { upsertBinding } from '../../agent/store/bindings.ts';
import { Database } from '../../agent/store/db.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { Journal } from '../../firmware-hooks/journal.ts';
import { runImageCommand, type ImageOptions } from '../../image/cli.ts';
import type { SlotsReport } from '../../image/slots/view.ts';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';

let dir: string;
let key: ReturnType<typeof testKey>;
let bundle010: string;
let bundle020: string;
let root: string;
let stateDir: string;
let configFile: string;

async function cli(command: string, args: string[], values: ImageOptions): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runImageCommand(command, args, values, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

async function slotsJson(): Promise<SlotsReport> {
  const r = await cli('slots', [], { slots: root, json: true });
  return JSON.parse(r.out) as SlotsReport;
}

/** A UDP peer that answers every OPTIONS with `status`: the agent's SIP side, as verify sees it. */
async function sipResponder(status: number): Promise<{ port: number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const text = msg.toString();
    const header = (name: string): string => new RegExp(`^${name}: (.*)$`, 'mi').exec(text)?.[1]?.trim() ?? '';
    const reply = [`SIP/2.0 ${status} ${status === 200 ? 'OK' : 'Service Unavailable'}`, `Via: ${header('Via')}`, `From: ${header('From')}`, `To: ${header('To')};tag=x`, `Call-ID: ${header('Call-ID')}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

async function writeConfig(port: number): Promise<AgentConfig> {
  const data = { site: { id: 'slot-test' }, state_dir: stateDir, sip: { domain: 'branchline.test', udp: `127.0.0.1:${port}`, tcp: `127.0.0.1:${port}` }, extensions: [{ number: '1001', password: 'secret-1001' }] };
  writeFileSync(configFile, JSON.stringify(data));
  return configFromData(data, configFile);
}

/** The agent's store as the agent leaves it: migrated, optionally with one phone registered. */
async function agentStore(opts: { phone: boolean }): Promise<void> {
  const db = await Database.open(path.join(stateDir, 'branchline.sqlite'));
  try {
    await migrate(db);
    if (opts.phone) {
      await db.run("INSERT INTO extensions (number, name, realm, ha1_md5, ha1_sha256, updated_at) VALUES ('1001', NULL, 'branchline.test', 'x', 'y', 0)");
      const b = upsertBinding({ extension: '1001', contact: 'sip:1001@127.0.0.1:5070', instance: null, callId: 'c1', cseq: 1, expiresAt: Date.now() + 3_600_000, q: null, source: 'udp:127.0.0.1:5070', path: [], userAgent: 'test-phone', registeredAt: Date.now() });
      await db.run(b.sql, b.params);
    }
  } finally {
    await db.close();
  }
}

async function changeStore(sql: string): Promise<void> {
  const db = await Database.open(path.join(stateDir, 'branchline.sqlite'));
  await db.exec(sql);
  await db.close();
}

/** Flash 0.1.0, then update to 0.2.0 with the agent's config: slot b on trial. */
async function onTrial(port: number): Promise<void> {
  await writeConfig(port);
  assert.equal((await cli('update', [bundle010], { slots: root, key: [key.publicFile] })).code, 0);
  const r = await cli('update', [bundle020], { slots: root, config: configFile });
  assert.equal(r.code, 0, r.err);
  assert.equal((await slotsJson()).trial?.slot, 'b');
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-boot-'));
  key = testKey(dir, 'release');
  bundle010 = await makeSyntheticBundle(dir, { version: '0.1.0', signingKey: key.privateKey, trusted: [key.publicFile] });
  bundle020 = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: key.privateKey, trusted: [key.publicFile] });
});

beforeEach(() => {
  const case_ = mkdtempSync(path.join(dir, 'case-'));
  root = path.join(case_, 'slots');
  stateDir = path.join(case_, 'state');
  configFile = path.join(case_, 'config.json');
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('post-boot verify, commit and rollback', () => {
  it('commits the slot on trial when SIP answers 200, the store is migrated and the phone is still registered', async () => {
    const sip = await sipResponder(200);
    try {
      await agentStore({ phone: true });
      await onTrial(sip.port);
      assert.equal((await cli('slots', ['boot'], { slots: root })).code, 0);
      const r = await cli('slots', ['verify'], { slots: root, config: configFile, deadline: '5' });
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /^committed slot b \(0\.2\.0\); update took [0-9.]+ s from install-check to commit\n$/);
      const report = await slotsJson();
      assert.equal(report.active, 'b');
      assert.equal(report.trial, null);
      assert.deepEqual(report.slots.map((s) => [s.name, s.state, s.version]), [
        ['a', 'committed', '0.1.0'],
        ['b', 'committed', '0.2.0'],
      ]);
      const verify = new Journal(path.join(root, 'journal.jsonl')).entries().find((e) => e.hook === 'post-boot-verify');
      assert.equal(verify?.status, 'ok');
      assert.match(verify?.detail ?? '', /OPTIONS to udp 127\.0\.0\.1:\d+ answered 200 .*store schema \d+ .*1 registration\(s\) from before the switch are live/);
      // A second verify has nothing left to do.
      const again = await cli('slots', ['verify'], { slots: root, config: configFile });
      assert.equal(again.code, 0);
      assert.match(again.err, /nothing on trial; slot b \(0\.2\.0\) is committed/);
    } finally {
      await sip.close();
    }
  });

  it('rolls back when SIP does not answer: the boot points at the previous slot again', async () => {
    const sip = await sipResponder(200);
    const port = sip.port;
    await sip.close(); // nothing listens there any more
    await agentStore({ phone: false });
    await onTrial(port);
    const r = await cli('slots', ['verify'], { slots: root, config: configFile, deadline: '1' });
    assert.equal(r.code, 1);
    assert.match(r.err, /^rolled back to slot a \(0\.1\.0\); restart the agent\. post-boot verify failed: SIP is not answering: no answer from 127\.0\.0\.1:\d+ within \d+ ms\n$/);
    assert.equal(readlinkSync(path.join(root, 'current')), 'slots/a');
    const report = await slotsJson();
    assert.equal(report.active, 'a');
    assert.equal(report.trial, null);
    assert.equal(report.slots[1]?.state, 'rolled-back');
    assert.match(report.slots[1]?.reason ?? '', /SIP is not answering/);
  });

  it('rolls back when SIP answers but not with 200', async () => {
    const sip = await sipResponder(503);
    try {
      await agentStore({ phone: false });
      await onTrial(sip.port);
      const r = await cli('slots', ['verify'], { slots: root, config: configFile, deadline: '2' });
      assert.equal(r.code, 1);
      assert.match(r.err, /answered 503 Service Unavailable, expected 200/);
    } finally {
      await sip.close();
    }
  });

  it('rolls back when the store was not migrated', async () => {
    const sip = await sipResponder(200);
    try {
      await agentStore({ phone: false });
      await onTrial(sip.port);
      // The new build started but never ran its migrations.
      await changeStore('DELETE FROM schema_migrations');
      const r = await cli('slots', ['verify'], { slots: root, config: configFile, deadline: '2' });
      assert.equal(r.code, 1);
      assert.match(r.err, /store schema is 0, this build needs \d+: not migrated/);
    } finally {
      await sip.close();
    }
  });

  it('rolls back when a phone registered before the switch does not come back', async () => {
    const sip = await sipResponder(200);
    try {
      await agentStore({ phone: true });
      await onTrial(sip.port);
      await changeStore('DELETE FROM bindings');
      const r = await cli('slots', ['verify'], { slots: root, config: configFile, deadline: '1' });
      assert.equal(r.code, 1);
      assert.match(r.err, /1 phone\(s\) not registered again \(1001\)/);
    } finally {
      await sip.close();
    }
  });

  it('rolls back a slot that keeps starting without a commit (crash loop, watchdog)', async () => {
    await agentStore({ phone: false });
    await onTrial(9); // never reached: the agent "crashes" before verify each time
    for (let start = 1; start <= 3; start++) {
      const r = await cli('slots', ['boot'], { slots: root });
      assert.equal(r.code, 0);
      assert.equal(r.err, `slot b on trial: start ${start} of 3\n`);
      assert.equal((await slotsJson()).active, 'b');
    }
    const r = await cli('slots', ['boot'], { slots: root });
    assert.equal(r.code, 0, 'the agent must still start, from the previous slot');
    assert.equal(r.err, 'rolled back to slot a (0.1.0): watchdog: slot b started 3 time(s) without passing post-boot verify\n');
    const report = await slotsJson();
    assert.equal(report.active, 'a');
    assert.equal(report.slots[1]?.state, 'rolled-back');
    const hooks = new Journal(path.join(root, 'journal.jsonl')).entries().map((e) => e.hook);
    assert.deepEqual(hooks.slice(-4), ['boot', 'boot', 'boot', 'rollback']);
  });
});
