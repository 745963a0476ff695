// What the peer features (directory, file transfer) need from the site's MQTT link.
// SyncService provides it; keeping it this narrow lets each feature be built and
// tested on its own link, and keeps them out of the outbox's business.
import type { HeaderFactory } from './protocol.ts';

export interface PeerLink {
  /** This site's id. */
  readonly site: string;
  readonly linkUp: boolean;
  readonly headers: HeaderFactory;
  publish(topic: string, payload: Buffer, opts?: { retain?: boolean }): Promise<void>;
  /** Subscribes to `filters` (renewed on reconnect) and feeds every message to `handler`. */
  attach(filters: string[], handler: (topic: string, payload: Buffer) => void): Promise<() => void>;
  onLinkChange(listener: (up: boolean) => void): () => void;
}
