// The peers directory: which site is home for which extension and DID, and where to
// send it a call. Each site publishes its own part, retained and versioned, on
// `site/{site}/directory`; every site keeps every part it received in SQLite with
// its version, so the directory answers after a restart and while the WAN is down.
// Presence comes from the sites' retained births and Last Wills (`site/{site}/state`).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database } from '../store/db.ts';
import type { GroupCommitter } from '../store/group-commit.ts';
import type { PeerLink } from './peer-link.ts';
import {
  encode,
  filters,
  parseDirectory,
  parseSiteState,
  parseTopic,
  topics,
  type DirectoryDid,
  type DirectoryExtension,
  type PeerDirectory as DirectoryMessage,
  type PeerHome,
  type PeerPresence,
  type PeerSummary,
} from './protocol.ts';
import type { SyncStateStore } from './state-store.ts';

/** What this site publishes about itself. */
export interface OwnDirectory {
  sip: DirectoryMessage['sip'];
  extensions: DirectoryExtension[];
  dids: DirectoryDid[];
}

export interface PeerDirectoryOptions {
  link: PeerLink;
  own: OwnDirectory;
  db: Database;
  committer: GroupCommitter;
  state: SyncStateStore;
  logger: Logger;
}

interface Entry {
  directory: DirectoryMessage;
  receivedAt: number;
}

interface Home {
  site: string;
  kind: 'extension' | 'did';
  extension?: string;
  did?: string;
}

interface OwnVersion {
  version: number;
  hash: string;
}

/** The content that makes a version: a change here gets a new one, a restart does not. */
function contentHash(own: OwnDirectory): string {
  const canonical = {
    sip: own.sip,
    extensions: [...own.extensions].sort((a, b) => a.number.localeCompare(b.number)),
    dids: [...own.dids].sort((a, b) => a.number.localeCompare(b.number)),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

function hashOf(d: DirectoryMessage): string {
  return contentHash({ sip: d.sip, extensions: d.extensions, dids: d.dids });
}

export class PeerDirectory {
  readonly #o: PeerDirectoryOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #presence = new Map<string, { state: PeerPresence; since: number | null }>();
  #index = new Map<string, Home>();
  #own: OwnVersion = { version: 0, hash: '' };
  readonly #listeners = new Set<() => void>();
  readonly #offs: Array<() => void> = [];
  /** Directory writes in arrival order: a newer version never lands before an older one. */
  #writes: Promise<unknown> = Promise.resolve();

  constructor(options: PeerDirectoryOptions) {
    this.#o = options;
  }

  get site(): string {
    return this.#o.link.site;
  }

  /** This site's directory version. */
  get version(): number {
    return this.#own.version;
  }

  async start(): Promise<void> {
    const rows = await this.#o.db.all<{ site: string; version: number; payload: string; received_at: number; presence: string; presence_since: number | null }>(
      'SELECT site, version, payload, received_at, presence, presence_since FROM peer_directory',
    );
    for (const r of rows) {
      try {
        const directory = parseDirectory(r.payload);
        this.#entries.set(r.site, { directory, receivedAt: r.received_at });
        this.#presence.set(r.site, { state: r.presence as PeerPresence, since: r.presence_since });
      } catch (err) {
        this.#o.logger.warn({ event: 'peers.bad_cache_row', site: r.site, err: (err as Error).message }, 'ignored an unreadable cached directory');
      }
    }
    await this.#settleOwnVersion();
    this.#rebuild();
    const { link } = this.#o;
    this.#offs.push(
      link.onLinkChange((up) => {
        if (up) void this.#publishOwn();
        this.#changed();
      }),
    );
    this.#offs.push(await link.attach([filters.allDirectories, filters.allSiteStates], (topic, payload) => this.#onMessage(topic, payload)));
    if (link.linkUp) void this.#publishOwn();
    this.#o.logger.info({ event: 'peers.started', version: this.#own.version, cached: this.#entries.size, numbers: this.#index.size }, 'peers directory ready');
  }

  async stop(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    await this.#writes;
  }

  /** Called when a directory, a presence or the link changed (file transfer waits on it). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  presenceOf(site: string): PeerPresence {
    if (site === this.site) return 'online';
    return this.#presence.get(site)?.state ?? 'unknown';
  }

  /** A peer is reachable while our link is up and its last state is online or survivable. */
  reachable(site: string): boolean {
    if (site === this.site) return true;
    const p = this.presenceOf(site);
    return this.#o.link.linkUp && (p === 'online' || p === 'survivable');
  }

  /** Which site is home for `number` (an extension or a DID), or undefined. */
  homeOf(number: string): PeerHome | undefined {
    const home = this.#index.get(number);
    if (!home) return undefined;
    const sip = home.site === this.site ? this.#o.own.sip : this.#entries.get(home.site)?.directory.sip;
    if (!sip) return undefined;
    return {
      siteId: home.site,
      sipAddress: sip.address,
      domain: sip.domain,
      transport: sip.transport,
      presence: this.presenceOf(home.site),
      reachable: this.reachable(home.site),
      kind: home.kind,
      ...(home.extension !== undefined ? { extension: home.extension } : {}),
      ...(home.did !== undefined ? { did: home.did } : {}),
    };
  }

  list(): PeerSummary[] {
    const out: PeerSummary[] = [];
    const own = this.#ownMessage();
    for (const d of [own, ...[...this.#entries.values()].map((e) => e.directory)]) {
      const p = d.site === this.site ? { state: 'online' as const, since: null } : (this.#presence.get(d.site) ?? { state: 'unknown' as const, since: null });
      out.push({
        site: d.site,
        version: d.version,
        sip_address: d.sip.address,
        extensions: d.extensions.length,
        dids: d.dids.length,
        presence: p.state,
        presence_since: p.since,
        received_at: d.site === this.site ? d.ts : (this.#entries.get(d.site)?.receivedAt ?? d.ts),
      });
    }
    return out.sort((a, b) => a.site.localeCompare(b.site));
  }

  // ---- own part ------------------------------------------------------------------

  async #settleOwnVersion(): Promise<void> {
    const stored = await this.#o.state.get<OwnVersion>('peers.own');
    const hash = contentHash(this.#o.own);
    if (stored && stored.hash === hash) {
      this.#own = stored;
      return;
    }
    this.#own = { version: (stored?.version ?? 0) + 1, hash };
    await this.#o.state.set({ 'peers.own': this.#own });
  }

  #ownMessage(): DirectoryMessage {
    return { ...this.#o.link.headers.next('directory'), site: this.site, version: this.#own.version, ...this.#o.own };
  }

  async #publishOwn(): Promise<void> {
    try {
      await this.#o.link.publish(topics.directory(this.site), encode(this.#ownMessage()), { retain: true });
      this.#o.logger.info({ event: 'peers.published', version: this.#own.version, extensions: this.#o.own.extensions.length, dids: this.#o.own.dids.length }, 'directory published');
    } catch (err) {
      // The link dropped: published again on the next connect.
      this.#o.logger.debug({ event: 'peers.publish_failed', err: (err as Error).message }, 'directory not published');
    }
  }

  /**
   * Our own retained directory came back from the broker. If it is newer than what we
   * hold (our state was wiped or restored from an old backup), move past it, so that
   * peers holding the newer version accept the next one.
   */
  #onOwnRetained(d: DirectoryMessage): void {
    if (d.version < this.#own.version) return;
    if (d.version === this.#own.version && hashOf(d) === this.#own.hash) return;
    const next: OwnVersion = hashOf(d) === this.#own.hash ? { version: d.version, hash: this.#own.hash } : { version: d.version + 1, hash: this.#own.hash };
    this.#o.logger.warn({ event: 'peers.own_version_behind', retained: d.version, held: this.#own.version, now: next.version }, 'the broker holds a newer directory of this site; moving past it');
    this.#own = next;
    this.#writes = this.#writes
      .then(() => this.#o.state.set({ 'peers.own': next }))
      .then(() => (next.version > d.version ? this.#publishOwn() : undefined))
      .catch((err: unknown) => this.#o.logger.error({ err }, 'could not store the directory version'));
  }

  // ---- peers' parts ----------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    try {
      if (parsed?.kind === 'directory') this.#onDirectory(parsed.site, payload);
      else if (parsed?.kind === 'siteState') this.#onState(parsed.site, payload);
    } catch (err) {
      this.#o.logger.warn({ event: 'peers.bad_message', topic, err: (err as Error).message }, 'ignored a malformed peer message');
    }
  }

  #onDirectory(site: string, payload: Buffer): void {
    if (payload.length === 0) {
      // A cleared retained topic: the site was retired.
      if (site === this.site || !this.#entries.has(site)) return;
      this.#entries.delete(site);
      this.#rebuild();
      this.#write([{ sql: 'DELETE FROM peer_directory WHERE site = ?', params: [site] }]);
      this.#o.logger.info({ event: 'peers.removed', site }, `site ${site} left the directory`);
      this.#changed();
      return;
    }
    const d = parseDirectory(payload);
    if (d.site !== site) throw new Error(`directory on ${site}'s topic names ${d.site}`);
    if (site === this.site) {
      this.#onOwnRetained(d);
      return;
    }
    const held = this.#entries.get(site);
    if (held && held.directory.version >= d.version) {
      if (held.directory.version > d.version) this.#o.logger.warn({ event: 'peers.stale_directory', site, version: d.version, held: held.directory.version }, 'ignored an older directory');
      return;
    }
    const now = Date.now();
    this.#entries.set(site, { directory: d, receivedAt: now });
    const presence = this.#presence.get(site) ?? { state: 'unknown' as const, since: null };
    this.#write([
      {
        sql: `INSERT INTO peer_directory (site, version, payload, received_at, presence, presence_since) VALUES (?, ?, ?, ?, ?, ?)
              ON CONFLICT(site) DO UPDATE SET version = excluded.version, payload = excluded.payload, received_at = excluded.received_at`,
        params: [site, d.version, payload.toString('utf8'), now, presence.state, presence.since],
      },
    ]);
    this.#rebuild();
    this.#o.logger.info({ event: 'peers.directory', site, version: d.version, extensions: d.extensions.length, dids: d.dids.length, address: d.sip.address }, `directory of ${site} v${d.version}`);
    this.#changed();
  }

  #onState(site: string, payload: Buffer): void {
    if (site === this.site || payload.length === 0) return;
    const s = parseSiteState(payload);
    if (s.site !== site) throw new Error(`state on ${site}'s topic names ${s.site}`);
    const held = this.#presence.get(site);
    if (held?.state === s.state) return;
    this.#presence.set(site, { state: s.state, since: s.since });
    this.#write([{ sql: 'UPDATE peer_directory SET presence = ?, presence_since = ? WHERE site = ?', params: [s.state, s.since, site] }]);
    this.#o.logger.info({ event: 'peers.presence', site, state: s.state }, `peer ${site} ${s.state}`);
    this.#changed();
  }

  #write(statements: Array<{ sql: string; params: Array<string | number | null> }>): void {
    this.#writes = this.#writes
      .then(() => this.#o.committer.submit(statements))
      .catch((err: unknown) => this.#o.logger.error({ event: 'peers.store_failed', err }, 'could not store the peers directory'));
  }

  /**
   * number → home. Our own numbers win; between peers that both claim a number, the
   * lowest site id wins and the conflict is logged (an operator must fix the configs).
   */
  #rebuild(): void {
    const index = new Map<string, Home>();
    const conflicts: Array<{ number: string; sites: string[] }> = [];
    const put = (number: string, home: Home): void => {
      const held = index.get(number);
      if (held && held.site !== home.site) {
        conflicts.push({ number, sites: [held.site, home.site] });
        return;
      }
      if (!held) index.set(number, home);
    };
    const own = { site: this.site, directory: { extensions: this.#o.own.extensions, dids: this.#o.own.dids } };
    const peers = [...this.#entries.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([site, e]) => ({ site, directory: e.directory }));
    for (const { site, directory } of [own, ...peers]) {
      for (const e of directory.extensions) put(e.number, { site, kind: 'extension', extension: e.number, ...(e.did !== undefined ? { did: e.did } : {}) });
      for (const d of directory.dids) put(d.number, { site, kind: 'did', did: d.number, ...(d.extension !== undefined ? { extension: d.extension } : {}) });
    }
    if (conflicts.length > 0) this.#o.logger.warn({ event: 'peers.conflict', count: conflicts.length, first: conflicts.slice(0, 5) }, 'numbers claimed by more than one site');
    this.#index = index;
  }

  #changed(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch (err) {
        this.#o.logger.error({ err }, 'peers listener failed');
      }
    }
  }
}
