// Desired configuration from the controller (retained, versioned) and the site's
// reported state. A desired config is applied only if its version is newer than the
// one in force; an older or equal one is reported `ignored`, never applied. The
// applied config and its version are stored, so a restart keeps them without the
// controller.
import type { Logger } from 'pino';
import type { EventBus } from '../events/bus.ts';
import { errorBody } from './errors.ts';
import type { DesiredConfig, HeaderFactory, ReportedConfig } from './protocol.ts';
import type { SyncStateStore } from './state-store.ts';

export interface ShadowOptions {
  site: string;
  headers: HeaderFactory;
  state: SyncStateStore;
  bus: EventBus;
  /** Throws to reject a desired config (the error's code and message are reported). */
  validate?: (config: Record<string, unknown>) => void;
  logger: Logger;
}

export class ConfigShadow {
  readonly #o: ShadowOptions;
  #version = 0;
  #config: Record<string, unknown> = {};
  #last: Pick<ReportedConfig, 'status' | 'desired_version' | 'error'> = { status: 'applied', desired_version: 0 };
  #chain: Promise<unknown> = Promise.resolve();

  constructor(options: ShadowOptions) {
    this.#o = options;
  }

  get version(): number {
    return this.#version;
  }

  get config(): Record<string, unknown> {
    return this.#config;
  }

  async load(): Promise<void> {
    this.#version = (await this.#o.state.get<number>('config.version')) ?? 0;
    this.#config = (await this.#o.state.get<Record<string, unknown>>('config.data')) ?? {};
    this.#last = { status: 'applied', desired_version: this.#version };
  }

  /** The reported state to publish now (on connect, and after every desired config). */
  reported(): ReportedConfig {
    const r: ReportedConfig = { ...this.#o.headers.next('config'), site: this.#o.site, version: this.#version, ...this.#last };
    return r;
  }

  /** Handles one desired config; resolves with the report to publish. Serialized. */
  apply(desired: DesiredConfig): Promise<ReportedConfig> {
    const next = this.#chain.then(() => this.#apply(desired));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #apply(desired: DesiredConfig): Promise<ReportedConfig> {
    const log = this.#o.logger;
    if (desired.version <= this.#version) {
      // A retained copy of what we run (every reconnect) is not news; an older one is.
      this.#last = desired.version === this.#version ? { status: 'applied', desired_version: desired.version } : { status: 'ignored', desired_version: desired.version };
      if (desired.version < this.#version) log.warn({ event: 'sync.config_ignored', version: desired.version, applied: this.#version }, 'desired config is older than the one in force; ignored');
      return this.reported();
    }
    try {
      this.#o.validate?.(desired.config);
      await this.#o.state.set({ 'config.version': desired.version, 'config.data': desired.config });
      this.#version = desired.version;
      this.#config = desired.config;
      this.#last = { status: 'applied', desired_version: desired.version };
      log.info({ event: 'sync.config_applied', version: desired.version }, 'desired config applied');
      this.#o.bus.emit('sync.config', { version: desired.version, config: desired.config });
    } catch (err) {
      this.#last = { status: 'rejected', desired_version: desired.version, error: errorBody(err) };
      log.warn({ event: 'sync.config_rejected', version: desired.version, err }, 'desired config rejected');
    }
    return this.reported();
  }
}
