// Which INVITEs come from a peer site's agent (docs/sync.md#calls-between-sites).
// Trust is by source address: an INVITE is a peer's when it names a known site in
// `X-Branchline-Site` (phones never send it: without it, an INVITE is a phone's and must
// authenticate) and comes from the address that site published as its SIP address in
// the peers directory (which only that site can publish, under the broker's per-site
// ACL) — the host, and over UDP the port too (an agent sends from its listening
// socket), so a phone on the same host as a peer agent is still a phone — and, when
// `peers.trusted_networks` is set, from inside one of those networks. Why not digest with a shared secret: it would cost every inter-site call a
// 407 round trip over the WAN and a secret to distribute and rotate per site pair,
// while sites already reach each other over a private WAN/VPN whose addresses the
// directory pins. What a peer's call may do is limited anyway: it reaches this site's
// own extensions and groups only (no outbound, no feature codes, no relaying).
import { BlockList, isIP } from 'node:net';
import type { PeerSummary } from '../sync/protocol.ts';
import { bareHost } from '../sip/transport.ts';

export const SITE_HEADER = 'X-Branchline-Site';

export interface PeerTrustOptions {
  /** The sites this one knows (PeerDirectory.list()), itself included. */
  peers: () => readonly PeerSummary[] | undefined;
  ownSite: string;
  /** CIDRs (`peers.trusted_networks`); empty: any address a peer published. */
  trustedNetworks: readonly string[];
}

/** "10.1.0.0/16" → BlockList entries; throws a clear error on a bad one (checked at config load). */
export function networksOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const m = /^([^/]+)\/([0-9]{1,3})$/.exec(cidr.trim());
    const family = m ? isIP(m[1] as string) : 0;
    const prefix = m ? Number(m[2]) : NaN;
    if (!m || family === 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`peers.trusted_networks: ${JSON.stringify(cidr)} is not an address/prefix (e.g. 10.20.0.0/16)`);
    list.addSubnet(m[1] as string, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

export class PeerTrust {
  readonly #o: PeerTrustOptions;
  readonly #networks: BlockList | undefined;

  constructor(options: PeerTrustOptions) {
    this.#o = options;
    this.#networks = options.trustedNetworks.length > 0 ? networksOf(options.trustedNetworks) : undefined;
  }

  /**
   * The peer site an INVITE comes from, or undefined when it is not a known peer's:
   * `claimed` is its X-Branchline-Site value, `source` where it came from.
   */
  siteOf(source: { transport: string; address: string; port: number }, claimed: string | undefined): string | undefined {
    if (claimed === undefined || claimed === '' || claimed === this.#o.ownSite) return undefined;
    const host = bareHost(source.address).toLowerCase();
    const family = isIP(host);
    if (family === 0) return undefined;
    if (this.#networks !== undefined && !this.#networks.check(host, family === 4 ? 'ipv4' : 'ipv6')) return undefined;
    const peer = (this.#o.peers() ?? []).find((p) => p.site === claimed);
    if (peer === undefined) return undefined;
    const published = hostPortOf(peer.sip_address);
    if (published.host !== host) return undefined;
    if (source.transport === 'udp' && published.port !== undefined && published.port !== source.port) return undefined;
    return peer.site;
  }
}

/** "198.18.0.2:5060" or "[2001:db8::1]:5060" → the bare host (lower case) and the port. */
function hostPortOf(hostPort: string): { host: string; port?: number } {
  const m = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(hostPort) ?? /^([^:]+)(?::([0-9]+))?$/.exec(hostPort);
  if (!m) return { host: hostPort.toLowerCase() };
  return { host: (m[1] as string).toLowerCase(), ...(m[2] !== undefined ? { port: Number(m[2]) } : {}) };
}

/** Config check (load.ts): every peers.trusted_networks entry parses. */
export function peerNetworkProblems(config: { peers?: { trusted_networks?: readonly string[] } }): Array<{ key: string; reason: string }> {
  return (config.peers?.trusted_networks ?? []).flatMap((cidr, i) => {
    try {
      networksOf([cidr]);
      return [];
    } catch (err) {
      return [{ key: `peers.trusted_networks[${i}]`, reason: (err as Error).message.replace(/^peers\.trusted_networks: /, '') }];
    }
  });
}
