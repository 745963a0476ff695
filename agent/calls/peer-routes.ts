// Which numbers live at peer sites and whether a call to them may go over the WAN now,
// for the dial plan (docs/sync.md#calls-between-sites). A peer is reachable when the
// peers directory says so (our MQTT link is up and its last presence is online or
// survivable) AND the WAN is usable by health's account:
//   - the WAN probes are not failing right now (before any hysteresis): this is what
//     lets a new call skip the peer within one probe round of a cut, long before the
//     MQTT keepalive notices;
//   - the site is not in survivable mode for the WAN's sake: after the WAN returns,
//     peers stay skipped until the hold-down ends (health.return_after), so a flapping
//     WAN does not flip routes. A controller that is down while the link and probes
//     are fine is no reason to leave the peers: sites call each other directly.
import type { WanSignals } from '../health/wan.ts';
import type { HealthMode, PeerHome } from '../sync/protocol.ts';
import type { PeerHomes, PeerHomeView } from './routing/types.ts';

/** What it reads of the peers directory (agent/sync/peers.ts). */
export interface PeerDirectoryView {
  readonly site: string;
  homeOf(number: string): PeerHome | undefined;
}

/** What it reads of health (HealthMonitor). */
export interface WanView {
  readonly mode: HealthMode;
  readonly signals: WanSignals;
}

export interface PeerRoutesOptions {
  directory: () => PeerDirectoryView | undefined;
  /** The health monitor; absent: only the directory decides. */
  wan?: () => WanView | undefined;
}

/** Whether calls may cross the WAN to peers now (see the header). */
export function wanUsableForPeers(wan: WanView | undefined): boolean {
  if (wan === undefined) return true;
  const { mode, signals } = wan;
  if (signals.probes === 'failed' || signals.link === 'down') return false;
  if (mode === 'normal') return true;
  // Survivable with the link up and no failing probe: either the hold-down after the
  // WAN came back (the controller is online again: wait it out) or only the controller
  // is missing (peers are still there).
  return signals.controller !== 'online';
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
    const wanUp = wanUsableForPeers(this.#o.wan?.());
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
