import type { AgentEvents, EventBus, EventName } from './bus.ts';

/** One event as it was emitted. */
export type BacklogEntry = { [K in EventName]: { name: K; payload: AgentEvents[K] } }[EventName];

/**
 * Keeps the events of the given names emitted from now until take(): for a subscriber
 * that starts after the publishers (site sync starts after the SIP stack answers the
 * first REGISTER, agent/agent.ts) and must not miss what happened meanwhile. take()
 * stops recording and hands the events over, in order; the bus is synchronous, so a
 * subscriber that attaches its own listeners and calls take() in the same turn sees
 * every event once.
 */
export class EventBacklog {
  #entries: BacklogEntry[] = [];
  #offs: Array<() => void>;

  constructor(bus: EventBus, names: readonly EventName[]) {
    this.#offs = names.map((name) => bus.on(name, (payload: AgentEvents[typeof name]) => this.#entries.push({ name, payload } as BacklogEntry)));
  }

  /** Stops recording; the events so far (empty on a second call). */
  take(): BacklogEntry[] {
    for (const off of this.#offs) off();
    this.#offs = [];
    const entries = this.#entries;
    this.#entries = [];
    return entries;
  }
}
