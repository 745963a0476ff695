// agent/health: survivable mode and telemetry. Feeds the WAN state machine from the
// sync subsystem's bus events (link, controller state) and from active probes,
// announces every mode change on the bus (`health.mode`: the dial plan switches
// routes on it, sync publishes it in the site state) and in the log, and queues a
// telemetry sample every period. Local calls, voicemail and registrations never
// wait on anything here.
import type { Logger } from 'pino';
import type { HealthConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { HealthMode, TelemetryData } from '../sync/protocol.ts';
import { probeRound, type ProbeTarget } from './probe.ts';
import { sampleTelemetry, type AgentHealthSources } from './telemetry.ts';
import { WanStateMachine, type WanSignals, type WanTransition } from './wan.ts';

export interface HealthMonitorOptions {
  config: HealthConfig;
  logger: Logger;
  bus: EventBus;
  probes: ProbeTarget[];
  sources: AgentHealthSources;
  /** Queues one telemetry sample (the sync outbox). */
  publishTelemetry: (sample: TelemetryData) => Promise<unknown>;
  initialMode?: HealthMode;
  now?: () => number;
}

export class HealthMonitor {
  readonly #o: HealthMonitorOptions;
  readonly #now: () => number;
  readonly #startedAt: number;
  #wan: WanStateMachine | undefined;
  #timers: NodeJS.Timeout[] = [];
  #deadline: NodeJS.Timeout | undefined;
  #unsubscribe: Array<() => void> = [];
  #probing = false;
  #stopped = false;

  constructor(options: HealthMonitorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  get mode(): HealthMode {
    return this.#wan?.mode ?? 'normal';
  }

  get signals(): WanSignals {
    return this.#wan?.signals ?? { link: 'down', controller: 'unknown', probes: 'unknown' };
  }

  /** True while the WAN looks usable right now (before hysteresis): for a dial plan that must not wait. */
  get wanUp(): boolean {
    return this.#wan?.wanUp ?? false;
  }

  start(): void {
    const { config, bus } = this.#o;
    this.#stopped = false;
    const wan = new WanStateMachine(
      { enterAfterMs: config.enter_after * 1000, returnAfterMs: config.return_after * 1000 },
      { mode: this.#o.initialMode ?? 'normal', now: this.#now() },
    );
    this.#wan = wan;
    bus.emit('health.mode', { mode: wan.mode, reason: 'agent started', since: wan.since });
    this.#unsubscribe.push(
      bus.on('sync.link', ({ state }) => this.#update({ link: state })),
      bus.on('sync.controller', ({ state }) => this.#update({ controller: state })),
    );
    if (this.#o.probes.length > 0) {
      const t = setInterval(() => void this.#probe(), config.probe_interval * 1000);
      this.#timers.push(t);
      void this.#probe();
    }
    const tel = setInterval(() => void this.telemetryNow(), config.telemetry_period * 1000);
    this.#timers.push(tel);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    clearTimeout(this.#deadline);
  }

  /** Samples and queues telemetry now; resolves false if sampling failed. */
  async telemetryNow(): Promise<boolean> {
    const wan = this.#wan;
    if (!wan || this.#stopped) return false;
    try {
      const sample = await sampleTelemetry(this.#o.sources, { mode: wan.mode, signals: wan.signals }, this.#startedAt);
      await this.#o.publishTelemetry(sample);
      return true;
    } catch (err) {
      this.#o.logger.warn({ event: 'health.telemetry_failed', err }, 'telemetry sample failed');
      return false;
    }
  }

  async #probe(): Promise<void> {
    if (this.#probing || this.#stopped) return;
    this.#probing = true;
    try {
      const ok = await probeRound(this.#o.probes, this.#o.config.probe_timeout * 1000);
      if (!this.#stopped) this.#update({ probes: ok ? 'ok' : 'failed' });
    } finally {
      this.#probing = false;
    }
  }

  #update(change: Partial<WanSignals>): void {
    const wan = this.#wan;
    if (!wan || this.#stopped) return;
    this.#announce(wan.update(change, this.#now()));
    this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#deadline);
    const wan = this.#wan;
    if (!wan || this.#stopped) return;
    const wait = wan.nextDeadline(this.#now());
    if (wait === undefined) return;
    this.#deadline = setTimeout(() => {
      this.#announce(wan.tick(this.#now()));
      this.#schedule();
    }, wait + 5);
  }

  #announce(t: WanTransition | undefined): void {
    if (!t) return;
    const log = this.#o.logger;
    const fields = { event: 'health.mode', mode: t.mode, reason: t.reason, signals: this.signals };
    if (t.mode === 'survivable') log.warn(fields, `survivable mode: ${t.reason}`);
    else log.info(fields, `back to normal mode: ${t.reason}`);
    this.#o.bus.emit('health.mode', t);
  }
}
