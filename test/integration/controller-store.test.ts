// The controller's fleet store, SQLite and PostgreSQL, through one contract: real
// SQLite files in a temp folder, and a real PostgreSQL server started by this test.
// Then `branchctl serve --database` as a user runs it: two instances that share no
// state directory (as on two hosts) split a site's records and store each once.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openFleetStore } from '../../controller/fleet-store.ts';
import { fleetStoreContract } from '../helpers/fleet-store-contract.ts';
import { REPO_ROOT } from '../helpers/agent.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { startPostgres, type PostgresHandle } from '../helpers/postgres.ts';
import { stopProcess, track } from '../helpers/proc.ts';
import { startTestSite, waitFor, type TestSite } from '../helpers/site-sync.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');

let server: PostgresHandle;
let databases = 0;

before(async () => {
  server = await startPostgres();
});

after(async () => {
  await server?.cleanup();
});

fleetStoreContract('SQLite (the state directory)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-fleet-sqlite-'));
  return { open: () => openFleetStore({ stateDir: dir }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

test('SQLite store: a NUL character in a header field is stored through bound parameters (SQL text cannot carry it)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-fleet-sqlite-'));
  const store = await openFleetStore({ stateDir: dir });
  try {
    const msg = { v: 1 as const, id: 'nul-1', stream: 'records' as const, seq: 1, boot: 'bo\u0000ot', ts: 1, site: 's3', type: 'call.record', data: { a: 1 } };
    assert.deepEqual(await store.ingest([msg, { ...msg, id: 'plain-2', seq: 2, boot: 'boot' }]), { inserted: 2, duplicates: 0 });
    assert.deepEqual(await store.ingest([msg]), { inserted: 0, duplicates: 1 });
    assert.deepEqual((await store.messages('s3', 'records')).map((r) => [r.id, r.boot]), [['nul-1', 'bo\u0000ot'], ['plain-2', 'boot']]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

fleetStoreContract('PostgreSQL (--database)', async () => {
  const url = await server.createDatabase(`fleet_${++databases}`);
  return { open: () => openFleetStore({ stateDir: '/nonexistent', databaseUrl: url }), cleanup: async () => undefined };
});

test('two branchctl serve --database instances with separate state directories share the ingest through PostgreSQL', async () => {
  const url = await server.createDatabase('fleet_serve');
  const broker = await startMosquitto();
  const dirs = [mkdtempSync(path.join(tmpdir(), 'bl-pg-ctl1-')), mkdtempSync(path.join(tmpdir(), 'bl-pg-ctl2-'))];
  const children: ChildProcess[] = [];
  let site: TestSite | undefined;
  try {
    for (const [i, dir] of dirs.entries()) {
      const child = spawn(process.execPath, [BRANCHCTL, 'serve', '--broker', broker.url, '--state', dir, '--id', `pg-ctl-${i + 1}`, '--share', 'ingest', '--database', url], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      children.push(child);
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      const ready = await waitFor(`pg-ctl-${i + 1} ready`, () => out.split('\n').find((l) => l.includes('"controller.ready"')), 20_000);
      assert.equal((JSON.parse(ready) as { store: string }).store, 'postgres');
    }
    site = await startTestSite({ id: 'pg-site', broker: broker.url, sync: { window: 50, ack_timeout: 1 } });
    await waitFor('controller online at the site', () => site?.siteSync.sync?.controllerState === 'online');
    for (let i = 0; i < 500; i++) await site.siteSync.sync!.enqueue({ stream: 'records', type: 'call.record', data: { id: `pg-call-${i}` } });
    await waitFor('the outbox drained', async () => (await site!.siteSync.sync!.depth()).records.count === 0, 30_000);

    const r = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [BRANCHCTL, 'records', '--broker', broker.url, '--site', 'pg-site', '--json'], { cwd: REPO_ROOT, timeout: 20_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
    );
    const seqs = (JSON.parse(r) as Array<{ seq: number }>).map((x) => x.seq);
    assert.deepEqual(seqs, Array.from({ length: 500 }, (_, i) => i + 1), 'every record once, in order');
    // Stored in PostgreSQL, not in either state directory.
    for (const dir of dirs) assert.equal(existsSync(path.join(dir, 'controller.sqlite')), false);
  } finally {
    await site?.cleanup();
    for (const c of children) await stopProcess(c, { graceMs: 5000 });
    await broker.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
});
