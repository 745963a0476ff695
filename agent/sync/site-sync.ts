// Site sync as the composition root sees it: the sync service (MQTT link, outbox,
// config, commands) and the health monitor (survivable mode, telemetry), wired to
// each other only through the bus. One start(), one stop(); a failure here is the
// caller's to log, never a reason to stop switching calls.
import type { Logger } from 'pino';
import { parseListen } from '../config/load.ts';
import type { AgentConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import { HealthMonitor } from '../health/monitor.ts';
import type { ProbeTarget } from '../health/probe.ts';
import type { AgentHealthSources } from '../health/telemetry.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter } from '../store/group-commit.ts';
import { SyncService } from './service.ts';

export interface SiteSyncOptions {
  config: Pick<AgentConfig, 'site' | 'mqtt' | 'sync' | 'health'>;
  logger: Logger;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  /** What the agent knows about itself; missing ones report 0 until their feature lands. */
  sources?: Partial<Omit<AgentHealthSources, 'outbox'>>;
  agentVersion?: string;
}

/** The WAN probe targets: `health.probes`, else the broker of `mqtt.url`, else none. */
export function probeTargets(config: Pick<AgentConfig, 'mqtt' | 'health'>): ProbeTarget[] {
  if (config.health.probes) return config.health.probes.map((p) => parseListen(p));
  if (!config.mqtt.url) return [];
  const u = new URL(config.mqtt.url);
  const port = u.port ? Number(u.port) : u.protocol === 'mqtts:' ? 8883 : 1883;
  return [{ host: u.hostname.replace(/^\[|\]$/g, ''), port }];
}

export class SiteSync {
  readonly #o: SiteSyncOptions;
  #sync: SyncService | undefined;
  #health: HealthMonitor | undefined;

  constructor(options: SiteSyncOptions) {
    this.#o = options;
  }

  get sync(): SyncService | undefined {
    return this.#sync;
  }

  get health(): HealthMonitor | undefined {
    return this.#health;
  }

  async start(): Promise<void> {
    const { config, logger, bus, db, committer, sources } = this.#o;
    const sync = new SyncService({ config, logger, bus, db, committer, ...(this.#o.agentVersion ? { agentVersion: this.#o.agentVersion } : {}) });
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
  }

  async stop(): Promise<void> {
    this.#health?.stop();
    await this.#sync?.stop();
  }
}
