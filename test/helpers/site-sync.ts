// A site's sync subsystem (SiteSync: MQTT link, outbox, health, peers directory,
// file transfer) in the test process, over a real SQLite file in a state directory
// the caller may reuse, as the agent builds it. For tests that call the API the dial
// plan and voicemail will call (homeOf, forwardFile) without a SIP stack around it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { configFromData } from '../../agent/config/load.ts';
import { EventBus } from '../../agent/events/bus.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { SiteSync } from '../../agent/sync/site-sync.ts';
import type { FileTransfers } from '../../agent/sync/files/file-transfers.ts';
import type { PeerDirectory } from '../../agent/sync/peers.ts';

export interface TestSite {
  id: string;
  dir: string;
  siteSync: SiteSync;
  peers: PeerDirectory;
  files: FileTransfers;
  db: Database;
  committer: GroupCommitter;
  lines: Array<Record<string, unknown>>;
  /** Stops sync and closes the store; the state directory stays (restart tests). */
  stop(): Promise<void>;
  /** stop() and delete the state directory. */
  cleanup(): Promise<void>;
}

export interface TestSiteOptions {
  id: string;
  broker: string;
  /** Reuse a state directory (restart); default a fresh temp one. */
  dir?: string;
  extensions?: Array<{ number: string; name?: string }>;
  /** The config's `peers` section. */
  peers?: Record<string, unknown>;
  /** The config's top-level `dids` (published in the peers directory). */
  dids?: Array<Record<string, unknown>>;
  sip?: Record<string, unknown>;
  /** Merged into the config's `mqtt` section (username, password). */
  mqtt?: Record<string, unknown>;
  /** The config's `sync` section (window, ack_timeout). */
  sync?: Record<string, unknown>;
  /** Sees every log line as it is written (a child process echoes them). */
  onLog?: (line: Record<string, unknown>) => void;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function startTestSite(o: TestSiteOptions): Promise<TestSite> {
  const dir = o.dir ?? mkdtempSync(path.join(tmpdir(), `bl-site-${o.id}-`));
  const config = configFromData(
    {
      site: { id: o.id },
      state_dir: dir,
      sip: { domain: `${o.id}.test`, udp: '127.0.0.1:5060', ...(o.sip ?? {}) },
      extensions: (o.extensions ?? []).map((e) => ({ ...e, password: 'secret-pw' })),
      mqtt: { url: o.broker, reconnect_period: 0.2, keepalive: 5, ...(o.mqtt ?? {}) },
      health: { telemetry_period: 3600 },
      peers: o.peers ?? {},
      ...(o.dids ? { dids: o.dids } : {}),
      ...(o.sync ? { sync: o.sync } : {}),
    },
    path.join(dir, 'config.yaml'),
  );
  const db = await Database.open(path.join(dir, 'branchline.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (!l.trim()) continue;
        const line = JSON.parse(l) as Record<string, unknown>;
        lines.push(line);
        o.onLog?.(line);
      }
      cb();
    },
  });
  const logger = createLogger('debug', stream);
  const siteSync = new SiteSync({ config, logger, bus: new EventBus(logger), db, committer });
  await siteSync.start();
  const { peers, files } = siteSync;
  if (!peers || !files) throw new Error(`site ${o.id}: peers did not start:\n${lines.filter((l) => (l['level'] as number) >= 50).map((l) => JSON.stringify(l)).join('\n')}`);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await siteSync.stop();
    await committer.idle();
    await db.close();
  };
  return {
    id: o.id,
    dir,
    siteSync,
    peers,
    files,
    db,
    committer,
    lines,
    stop,
    cleanup: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
