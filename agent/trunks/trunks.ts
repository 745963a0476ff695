// The trunks subsystem as the composition root sees it: the line cards of
// `linecards[]` (made by the drivers factory) and the TrunkService over them, with
// start() and stop(). The constructor only assigns.

import type { Logger } from 'pino';
import { createLineCards, type CreateLineCardOptions, type LineCard } from '../../drivers/index.ts';
import type { AgentConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { Database } from '../store/db.ts';
import type { TrunkClock } from './clock.ts';
import { TrunkPlan } from './plan.ts';
import { TrunkService } from './trunk-service.ts';

export interface TrunksOptions {
  config: AgentConfig;
  logger: Logger;
  bus?: EventBus;
  /** The agent's store: hourly usage goes to trunk_usage_hourly. */
  db?: Database;
  clock?: TrunkClock;
  /** Passed to the drivers factory (tests run sim cards faster). */
  cardOptions?: CreateLineCardOptions;
}

export class Trunks {
  readonly #options: TrunksOptions;
  #cards: LineCard[] = [];
  #service: TrunkService | undefined;

  constructor(options: TrunksOptions) {
    this.#options = options;
  }

  /**
   * Starts every card, then the trunks over them. A card that fails to start is
   * logged and kept: its channels refuse calls (dialling fails over to the next
   * trunk group) instead of stopping the agent. A trunk config the cards cannot
   * carry (a span they lack) throws.
   */
  async start(): Promise<void> {
    if (this.#service) return;
    const { config, logger } = this.#options;
    const log = logger.child({ subsystem: 'trunks' });
    this.#cards = createLineCards(config.linecards, this.#options.cardOptions ?? {});
    for (const card of this.#cards) {
      try {
        await card.start();
        log.info({ card: card.name, driver: card.driver, spans: card.spans().length }, 'line card started');
      } catch (err) {
        log.error({ err, card: card.name }, `line card ${card.name} did not start: ${(err as Error).message}`);
      }
    }
    const service = new TrunkService({
      plan: new TrunkPlan(config),
      cards: this.#cards,
      logger: log,
      ...(this.#options.bus ? { bus: this.#options.bus } : {}),
      ...(this.#options.db ? { db: this.#options.db } : {}),
      ...(this.#options.clock ? { clock: this.#options.clock } : {}),
    });
    service.start();
    this.#service = service;
  }

  async stop(): Promise<void> {
    await this.#service?.stop();
    this.#service = undefined;
    for (const card of this.#cards) {
      await card.stop().catch((err: unknown) => this.#options.logger.warn({ err, card: card.name }, 'line card did not stop cleanly'));
    }
    this.#cards = [];
  }

  /** The running service: onInbound() for the call core, dialOut() for `external` targets. */
  get service(): TrunkService {
    if (!this.#service) throw new Error('the trunks are not started');
    return this.#service;
  }

  get cards(): readonly LineCard[] {
    return this.#cards;
  }
}
