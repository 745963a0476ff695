// Distributed voicemail between two sites over a real Mosquitto (docs/sync.md#distributed-voicemail):
// each site is the agent's own parts — SQLite store, site sync with the peers
// directory and file transfer, voicemail, the forwarding — wired as agent.ts wires them.
// A message for site B's mailbox 2002 is taken at site A (stored as a deposit stores
// it: the recording itself is covered by the voicemail tests and sites-e2e.test.ts),
// reaches B byte for byte and is indexed there once; heard and deleted at B, A's copy
// follows; a guest message whose forward never got queued (a crash between the two) is
// forwarded at the next start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { EventBus } from '../../agent/events/bus.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { SiteSync } from '../../agent/sync/site-sync.ts';
import { VoicemailForwarding } from '../../agent/voicemail/forwarding.ts';
import { Voicemail } from '../../agent/voicemail/voicemail.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { waitFor } from '../helpers/site-sync.ts';

interface Site {
  id: string;
  dir: string;
  voicemail: Voicemail;
  db: Database;
  lines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

let broker: MosquittoHandle;
const dirs: string[] = [];
const running = new Set<Site>();

async function startSite(id: string, extensions: Array<Record<string, unknown>>, dir?: string): Promise<Site> {
  const stateDir = dir ?? mkdtempSync(path.join(tmpdir(), `bl-vmfwd-${id}-`));
  if (!dir) dirs.push(stateDir);
  const config = configFromData(
    {
      site: { id },
      state_dir: stateDir,
      sip: { domain: `${id}.test`, udp: '127.0.0.1:5060' },
      extensions,
      mqtt: { url: broker.url, reconnect_period: 0.2, keepalive: 5 },
      health: { telemetry_period: 3600 },
      peers: { files: { status_timeout: 0.5 } },
    },
    path.join(stateDir, 'config.yaml'),
  );
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger('info', stream);
  const db = await Database.open(path.join(stateDir, 'branchline.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  const bus = new EventBus(logger);
  const siteSync = new SiteSync({ config, logger, bus, db, committer });
  await siteSync.start();
  const { peers, files } = siteSync;
  assert.ok(peers && files, `site ${id}: peers and file transfer started`);
  const voicemail = new Voicemail({ settings: config.voicemail, extensions: config.extensions, stateDir, domain: config.sip.domain, logger, bus, db, committer });
  await voicemail.start();
  const forwarding = new VoicemailForwarding({
    voicemail,
    files,
    homeOf: (mailbox) => {
      const home = peers.homeOf(mailbox);
      return home !== undefined && home.siteId !== peers.site ? home.siteId : undefined;
    },
    guestMailbox: { pin: '', max_messages: 100, max_message_seconds: 180, min_message_seconds: 1, silence_seconds: 5 },
    bus,
    db,
    committer,
    logger,
  });
  await forwarding.start();
  const site: Site = {
    id,
    dir: stateDir,
    voicemail,
    db,
    lines,
    stop: async () => {
      running.delete(site);
      forwarding.stop();
      voicemail.stop();
      await siteSync.stop();
      await committer.idle();
      await db.close();
    },
  };
  running.add(site);
  return site;
}

/** A message as a deposit leaves it (pending row, the audio in place, committed), then its event. */
async function takeMessage(site: Site, mailbox: string, audio: Buffer, announce = true): Promise<string> {
  const pending = await site.voicemail.store.beginDeposit({ mailbox, caller: '1001', callerName: 'Alice', reason: 'unavailable' });
  await writeFile(pending.file, audio);
  await site.voicemail.store.commitDeposit(pending.id, 2500);
  const m = await site.voicemail.store.get(pending.id);
  assert.ok(m);
  if (announce) site.voicemail.messageIndexed(m);
  return m.id;
}

const B_EXTENSIONS = [{ number: '2002', password: 'secret-pw', voicemail: { pin: '2468' } }];
const A_EXTENSIONS = [{ number: '1001', password: 'secret-pw' }];
let a: Site;
let b: Site;

before(async () => {
  broker = await startMosquitto();
  b = await startSite('site-b', B_EXTENSIONS);
  a = await startSite('site-a', A_EXTENSIONS);
  // A must know that 2002 lives at B, and B must be reachable.
  await waitFor('site-b in site-a’s directory', () => a.lines.some((l) => l['event'] === 'peers.directory' && l['site'] === 'site-b'));
  await waitFor('site-b online at site-a', () => a.lines.some((l) => l['event'] === 'peers.presence' && l['site'] === 'site-b' && l['state'] === 'online'));
});

after(async () => {
  for (const s of [...running]) await s.stop().catch(() => undefined);
  await broker?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a message taken at A for B’s mailbox reaches B byte for byte and is indexed there once', async () => {
  const audio = randomBytes(150_000);
  const id = await takeMessage(a, '2002', audio);
  const atB = await waitFor('the message at B', () => b.voicemail.store.get(id), 15_000, 50);
  assert.equal(atB.mailbox, '2002');
  assert.equal(atB.folder, 'INBOX');
  assert.equal(atB.caller, '1001');
  assert.equal(atB.callerName, 'Alice');
  assert.equal(atB.durationMs, 2500);
  assert.deepEqual(await readFile(atB.file), audio, 'the same bytes');
  assert.equal(atB.file, path.join(b.dir, 'voicemail', '2002', `${id}.wav`), 'in the mailbox like a local message');
  assert.deepEqual(await b.voicemail.store.counts('2002'), { newMessages: 1, oldMessages: 0, total: 1 });
  // A keeps its copy until B says what became of it.
  assert.equal((await a.voicemail.store.get(id))?.folder, 'INBOX');
  // Sent again (a retry, a restart): still once at B.
  await takeMessageAgain(a, id);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal((await b.voicemail.store.list('2002')).length, 1);
});

/** The same message announced again, as a repeated event or a restart's sweep would. */
async function takeMessageAgain(site: Site, id: string): Promise<void> {
  const m = await site.voicemail.store.get(id);
  assert.ok(m);
  site.voicemail.messageIndexed(m);
}

test('heard at B moves A’s copy to Old; deleted at B deletes A’s copy and its file', async () => {
  const [m] = await b.voicemail.store.list('2002');
  assert.ok(m);
  // What the mailbox IVR does when the message has been played: move it, then counts change.
  await b.voicemail.store.move(m.id, 'Old');
  await b.voicemail.countsChanged('2002');
  await waitFor('heard at A', async () => (await a.voicemail.store.get(m.id))?.folder === 'Old', 10_000, 50);
  const atA = await a.voicemail.store.get(m.id);
  assert.ok(atA);
  await b.voicemail.store.remove(m.id);
  await b.voicemail.countsChanged('2002');
  await waitFor('deleted at A', async () => (await a.voicemail.store.get(m.id)) === undefined, 10_000, 50);
  assert.equal(existsSync(atA.file), false, 'the file went with the row');
});

test('a guest message whose forward was never queued (a crash in between) goes at the next start', async () => {
  const audio = randomBytes(20_000);
  // Stored, but the event that queues it never came: the process died right after the commit.
  const id = await takeMessage(a, '2002', audio, false);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await b.voicemail.store.get(id), undefined);
  const dir = a.dir;
  await a.stop();
  a = await startSite('site-a', A_EXTENSIONS, dir);
  const atB = await waitFor('the swept message at B', () => b.voicemail.store.get(id), 15_000, 50);
  assert.deepEqual(await readFile(atB.file), audio);
});
