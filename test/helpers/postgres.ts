// A real PostgreSQL (Debian `postgresql`) for one test file: a fresh cluster made with
// initdb in a temp folder, listening on a free loopback port, trust authentication,
// stopped by its own PID. PostgreSQL refuses to run as root: when the tests run as
// root, the cluster belongs to the `postgres` system user and the server runs as it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freeUdpTcpPort } from './ports.ts';
import { isRunning, stopProcess, track } from './proc.ts';

export interface PostgresHandle {
  /** `postgres://branchline@127.0.0.1:PORT/DB` */
  url: string;
  /** A fresh database on this server, for one test. */
  createDatabase(name: string): Promise<string>;
  output(): string;
  cleanup(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^[0-9]+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions[0] ? path.join(root, versions[0], 'bin') : undefined;
  if (!dir || !existsSync(path.join(dir, 'initdb'))) throw new Error('PostgreSQL is not installed (Debian package postgresql)');
  return dir;
}

/** Runs as the postgres user when we are root (setpriv execs: the PID we track is the server's). */
function asOwner(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]];
}

function run(cmd: string, args: string[]): Promise<void> {
  const [c, a] = asOwner(cmd, args);
  return new Promise((resolve, reject) => {
    execFile(c, a, { timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`)) : resolve()));
  });
}

export async function startPostgres(): Promise<PostgresHandle> {
  const bin = binDir();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-pg-'));
  const data = path.join(dir, 'data');
  if (process.getuid?.() === 0) {
    const { uid, gid } = await ownerIds();
    chownSync(dir, uid, gid);
  }
  // --no-sync: a throw-away test cluster; the server itself runs with fsync on.
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'branchline', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = await freeUdpTcpPort();
  const [c, a] = asOwner(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=50']);
  const child: ChildProcess = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const base = `postgres://branchline@127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!isRunning(child)) throw new Error(`postgres exited at start:\n${out}`);
    const client = new pg.Client({ connectionString: `${base}/postgres` });
    const ok = await client.connect().then(
      () => true,
      () => false,
    );
    await client.end().catch(() => undefined);
    if (ok) break;
    if (Date.now() > deadline) {
      await stopProcess(child, { signal: 'SIGKILL' });
      throw new Error(`postgres did not accept connections within 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `${base}/postgres`,
    createDatabase: async (name) => {
      const client = new pg.Client({ connectionString: `${base}/postgres` });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
      } finally {
        await client.end();
      }
      return `${base}/${name}`;
    },
    output: () => out,
    cleanup: async () => {
      // SIGINT: PostgreSQL's "fast shutdown".
      await stopProcess(child, { signal: 'SIGINT', graceMs: 10_000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ownerIds(): Promise<{ uid: number; gid: number }> {
  return new Promise((resolve, reject) => {
    execFile('id', ['-u', 'postgres'], (e1, uid) => {
      if (e1) return reject(new Error('no postgres system user to run PostgreSQL as (tests run as root)'));
      execFile('id', ['-g', 'postgres'], (e2, gid) => (e2 ? reject(e2) : resolve({ uid: Number(uid.trim()), gid: Number(gid.trim()) })));
    });
  });
}
