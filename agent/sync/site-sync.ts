// Site sync as the composition root sees it: the sync service (MQTT link, outbox,
// config, commands) and the health monitor (survivable mode, telemetry), wired to
// each other only through the bus. One start(), one stop(); a failure here is the
// caller's to log, never a reason to stop switching calls.
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { parseListen } from '../config/load.ts';
import type { AgentConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { BacklogEntry } from '../events/backlog.ts';
import { HealthMonitor } from '../health/monitor.ts';
import type { ProbeTarget } from '../health/probe.ts';
import type { AgentHealthSources } from '../health/telemetry.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter } from '../store/group-commit.ts';
import { FileTransfers } from './files/file-transfers.ts';
import { PeerDirectory, type OwnDirectory } from './peers.ts';
import { SyncError } from './errors.ts';
import { SyncService } from './service.ts';
import { SyncStateStore } from './state-store.ts';

export interface SiteSyncOptions {
  config: Pick<AgentConfig, 'site' | 'mqtt' | 'sync' | 'health' | 'peers' | 'extensions' | 'dids' | 'sip' | 'state_dir'>;
  logger: Logger;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  /** What the agent knows about itself; missing ones report 0 until their feature lands. */
  sources?: Partial<Omit<AgentHealthSources, 'outbox'>>;
  agentVersion?: string;
  /** Forwarded events from before sync started (agent/events/backlog.ts). */
  backlog?: () => BacklogEntry[];
}

/** The WAN probe targets: `health.probes`, else the broker of `mqtt.url`, else none. */
export function probeTargets(config: Pick<AgentConfig, 'mqtt' | 'health'>): ProbeTarget[] {
  if (config.health.probes) return config.health.probes.map((p) => parseListen(p));
  if (!config.mqtt.url) return [];
  const u = new URL(config.mqtt.url);
  const port = u.port ? Number(u.port) : u.protocol === 'mqtts:' ? 8883 : 1883;
  return [{ host: u.hostname.replace(/^\[|\]$/g, ''), port }];
}

/** The first non-internal IPv4 address: what peers can reach when SIP listens on a wildcard. */
function externalIPv4(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/** What this site publishes in the peers directory, from its config. */
export function ownDirectory(config: Pick<AgentConfig, 'peers' | 'extensions' | 'dids' | 'sip'>): OwnDirectory {
  const { peers, sip, dids } = config;
  let address = peers.sip_address;
  if (address === undefined) {
    const l = peers.transport === 'tcp' ? sip.tcp : sip.udp;
    const wildcard = l.host === '0.0.0.0' || l.host === '::';
    const host = wildcard ? (externalIPv4() ?? '127.0.0.1') : l.host;
    address = `${host.includes(':') ? `[${host}]` : host}:${l.port}`;
  }
  // An extension's DID (for the PSTN fallback) is the first `dids` entry that rings it.
  const didOf = new Map<string, string>();
  for (const d of dids) if (d.extension !== undefined && !didOf.has(d.extension)) didOf.set(d.extension, d.number);
  return {
    sip: { address, domain: sip.domain, transport: peers.transport },
    extensions: config.extensions.map((e) => ({ number: e.number, ...(e.name !== undefined ? { name: e.name } : {}), ...(didOf.has(e.number) ? { did: didOf.get(e.number) as string } : {}) })),
    // A DID rings an extension or a ring group: either is the number to call at the peer.
    dids: dids.map((d) => {
      const target = d.extension ?? d.group;
      return { number: d.number, ...(target !== undefined ? { extension: target } : {}) };
    }),
  };
}

export class SiteSync {
  readonly #o: SiteSyncOptions;
  #sync: SyncService | undefined;
  #health: HealthMonitor | undefined;
  #peers: PeerDirectory | undefined;
  #files: FileTransfers | undefined;

  constructor(options: SiteSyncOptions) {
    this.#o = options;
  }

  get sync(): SyncService | undefined {
    return this.#sync;
  }

  get health(): HealthMonitor | undefined {
    return this.#health;
  }

  /** The peers directory (`homeOf(number)`); undefined until sync started. */
  get peers(): PeerDirectory | undefined {
    return this.#peers;
  }

  /** File transfer to and from peers (`forwardFile`, `handle`); undefined until sync started. */
  get files(): FileTransfers | undefined {
    return this.#files;
  }

  async start(): Promise<void> {
    const { config, logger, bus, db, committer, sources } = this.#o;
    const sync = new SyncService({ config, logger, bus, db, committer, ...(this.#o.agentVersion ? { agentVersion: this.#o.agentVersion } : {}), ...(this.#o.backlog ? { backlog: this.#o.backlog } : {}) });
    this.#sync = sync;
    // The monitor first: it must hear the link's first `up`.
    const health = new HealthMonitor({
      config: config.health,
      logger: logger.child({ subsystem: 'health' }),
      bus,
      probes: probeTargets(config),
      sources: {
        registrations: sources?.registrations ?? (() => 0),
        activeCalls: sources?.activeCalls ?? (() => 0),
        channels: sources?.channels ?? (() => ({ total: 0, in_use: 0 })),
        outbox: () => sync.depth(),
      },
      publishTelemetry: (sample) => sync.enqueue({ stream: 'telemetry', type: 'telemetry', data: sample }),
    });
    this.#health = health;
    health.start();
    await sync.start();
    sync.registerCommand('telemetry.now', async () => ({ queued: await health.telemetryNow() }));
    await this.#startPeers(sync);
  }

  /** Peers directory and file transfer: a failure here leaves the outbox and health running. */
  async #startPeers(sync: SyncService): Promise<void> {
    const { config, logger, db, committer } = this.#o;
    try {
      const peers = new PeerDirectory({ link: sync, own: ownDirectory(config), db, committer, state: new SyncStateStore(db, committer), logger: logger.child({ subsystem: 'peers' }) });
      await peers.start();
      this.#peers = peers;
      const f = config.peers.files;
      const files = new FileTransfers({
        link: sync,
        db,
        committer,
        logger: logger.child({ subsystem: 'files' }),
        reachable: (site) => peers.reachable(site),
        onReachabilityChange: (listener) => peers.onChange(listener),
        incomingDir: path.join(config.state_dir, 'files', 'incoming'),
        chunkSize: f.chunk_size,
        window: f.window,
        statusTimeoutMs: f.status_timeout * 1000,
        maxBytes: f.max_bytes,
      });
      await files.start();
      this.#files = files;
      sync.registerCommand('peers.lookup', async (args) => {
        const number = (args as { number?: unknown } | null)?.number;
        if (typeof number !== 'string' || number === '') throw new SyncError('EBADARGS', 'peers.lookup: "number" is required');
        return peers.homeOf(number) ?? null;
      });
      sync.registerCommand('peers.list', async () => peers.list());
      sync.registerCommand('files.list', async () => files.list());
    } catch (err) {
      logger.error({ event: 'peers.failed', err }, `peers directory and file transfer failed to start: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    await this.#files?.stop();
    await this.#peers?.stop();
    this.#health?.stop();
    await this.#sync?.stop();
  }
}
