// Which numbers live at peer sites and whether a call to them may go over the WAN now,
// for the dial plan (docs/sync.md#calls-between-sites). A peer is reachable when the
// peers directory says so (our MQTT link is up and its last presence is online or
// survivable) AND the WAN looks usable right now (health: link, controller, probes,
// before any hysteresis). The second condition is what lets a new call skip the peer
// within one probe round of a cut, long before the MQTT keepalive notices.
import type { PeerHome } from '../sync/protocol.ts';
import type { PeerHomes, PeerHomeView } from './routing/types.ts';

/** What it reads of the peers directory (agent/sync/peers.ts). */
export interface PeerDirectoryView {
  readonly site: string;
  homeOf(number: string): PeerHome | undefined;
}

export interface PeerRoutesOptions {
  directory: () => PeerDirectoryView | undefined;
  /** True while the WAN looks usable now (HealthMonitor.wanUp); absent: only the directory decides. */
  wanUp?: () => boolean;
}

export class PeerRoutes implements PeerHomes {
  readonly #o: PeerRoutesOptions;

  constructor(options: PeerRoutesOptions) {
    this.#o = options;
  }

  homeOf(number: string): PeerHomeView | undefined {
    const directory = this.#o.directory();
    const home = directory?.homeOf(number);
    if (directory === undefined || home === undefined || home.siteId === directory.site) return undefined;
    const wanUp = this.#o.wanUp?.() ?? true;
    return {
      site: home.siteId,
      // A DID rings an extension (or group) at its site: that is what we dial there.
      number: home.extension ?? home.did ?? number,
      address: home.sipAddress,
      transport: home.transport,
      domain: home.domain,
      reachable: home.reachable && wanUp,
      ...(home.did !== undefined ? { did: home.did } : {}),
    };
  }
}
