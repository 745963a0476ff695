// A line card's events for one channel. A card emits every channel's events on one
// emitter; with a listener per call (30 calls on an E1, each following its release,
// digits, ringing and answer) the card would carry hundreds of listeners and every
// event would visit them all. Here each card gets one listener per event kind, which
// hands the event to the listeners of its channel only.

import { channelKey, type ChannelRef, type LineCard, type LineCardEvents } from '../../drivers/types.ts';

type ChannelEventName = 'alerting' | 'answer' | 'release' | 'digits';
type Payload<E extends ChannelEventName> = LineCardEvents[E][0];
type Listener<E extends ChannelEventName> = (event: Payload<E>) => void;

class CardDispatcher {
  readonly #card: LineCard;
  readonly #listeners = new Map<ChannelEventName, Map<string, Set<(event: never) => void>>>();

  constructor(card: LineCard) {
    this.#card = card;
  }

  on<E extends ChannelEventName>(name: E, channel: ChannelRef, listener: Listener<E>): () => void {
    let byChannel = this.#listeners.get(name);
    if (byChannel === undefined) {
      byChannel = new Map();
      this.#listeners.set(name, byChannel);
      const routes = byChannel;
      const dispatch = (event: { channel: ChannelRef }): void => {
        const set = routes.get(channelKey(event.channel));
        if (set === undefined) return;
        for (const l of [...set]) (l as (e: { channel: ChannelRef }) => void)(event);
      };
      // Each kind's payload carries its channel; the cast only joins the four signatures.
      this.#card.on(name, dispatch as never);
    }
    const key = channelKey(channel);
    let set = byChannel.get(key);
    if (set === undefined) {
      set = new Set();
      byChannel.set(key, set);
    }
    const added = listener as (event: never) => void;
    set.add(added);
    return () => {
      set.delete(added);
      if (set.size === 0) byChannel.delete(key);
    };
  }
}

const dispatchers = new WeakMap<LineCard, CardDispatcher>();

/** Listens to one channel's `name` events; returns the function that stops listening. */
export function onChannelEvent<E extends ChannelEventName>(card: LineCard, name: E, channel: ChannelRef, listener: Listener<E>): () => void {
  let dispatcher = dispatchers.get(card);
  if (dispatcher === undefined) {
    dispatcher = new CardDispatcher(card);
    dispatchers.set(card, dispatcher);
  }
  return dispatcher.on(name, channel, listener);
}
