import { BlockList, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { Endpoint, SipRequest } from '../sip/types.ts';
import { AuthLockout } from './lockout.ts';
import { RateLimiter } from './rate-limiter.ts';

type SecurityConfig = AgentConfig['sip']['security'];

const TRUSTED_CACHE_LIMIT = 4096;

/**
 * The agent's first line of defence, run on every request before any transaction
 * state is created: scanners and locked-out or flooding sources are dropped without
 * an answer (an answer only tells a scanner that something lives here).
 */
export class SecurityGuard {
  readonly #config: SecurityConfig;
  readonly #logger: Logger;
  readonly #bus: EventBus;
  readonly #rate: RateLimiter;
  readonly lockout: AuthLockout;
  readonly #trusted = new BlockList();
  /** isTrusted answers by address: BlockList.check builds a native SocketAddress per call. */
  readonly #trustedCache = new Map<string, boolean>();
  readonly #scannerPatterns: string[];
  /** Last time we logged about a source, so a flood produces one line a minute, not thousands. */
  readonly #lastLogged = new Map<string, number>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #dropped = { rate: 0, scanner: 0, lockedOut: 0 };

  constructor(config: SecurityConfig, logger: Logger, bus: EventBus) {
    this.#config = config;
    this.#logger = logger;
    this.#bus = bus;
    this.#rate = new RateLimiter({ perSecond: config.rate_limit.requests_per_second, burst: config.rate_limit.burst });
    this.lockout = new AuthLockout({ failures: config.lockout.failures, windowMs: config.lockout.window * 1000, durationMs: config.lockout.duration * 1000 });
    this.#scannerPatterns = config.scanner_user_agents.map((s) => s.toLowerCase());
  }

  start(): void {
    this.#trustedCache.clear();
    for (const net of this.#config.trusted_networks) {
      const [address, prefix] = net.split('/') as [string, string | undefined];
      const family = isIPv6(address) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#trusted.addAddress(address, family);
      else this.#trusted.addSubnet(address, Number(prefix), family);
    }
    this.#sweepTimer = setInterval(() => this.#sweep(), 10_000);
    this.#sweepTimer.unref();
  }

  stop(): void {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  isTrusted(address: string): boolean {
    let trusted = this.#trustedCache.get(address);
    if (trusted === undefined) {
      trusted = this.#trusted.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
      // Bounded: a flood from many sources just starts the cache over.
      if (this.#trustedCache.size >= TRUSTED_CACHE_LIMIT) this.#trustedCache.clear();
      this.#trustedCache.set(address, trusted);
    }
    return trusted;
  }

  /** The stack's request filter: 'drop' or undefined (let it through). */
  filter(request: SipRequest, source: Endpoint): 'drop' | undefined {
    const address = source.address;
    const userAgent = request.headers['user-agent'];
    if (typeof userAgent === 'string' && this.#isScanner(userAgent)) {
      this.#dropped.scanner++;
      if (this.#shouldLog(`scanner:${address}`)) {
        this.#logger.warn({ event: 'security.scanner', source: address, userAgent }, 'dropped requests from a SIP scanner (user agent is on sip.security.scanner_user_agents)');
        this.#bus.emit('security.scanner', { source: address, userAgent });
      }
      return 'drop';
    }
    if (this.isTrusted(address)) return undefined;
    const until = this.lockout.lockedUntil(address);
    if (until !== undefined) {
      this.#dropped.lockedOut++;
      return 'drop';
    }
    if (!this.#rate.take(address)) {
      this.#dropped.rate++;
      if (this.#shouldLog(`rate:${address}`)) {
        this.#logger.warn(
          { event: 'security.rate_limited', source: address, limit: this.#config.rate_limit.requests_per_second },
          'source exceeds sip.security.rate_limit; dropping its excess requests',
        );
      }
      return 'drop';
    }
    return undefined;
  }

  /** Called by the registrar after a failed authentication; logs an actionable line on lock-out. */
  authFailed(address: string, extension: string | undefined): void {
    if (this.isTrusted(address)) return;
    const locked = this.lockout.recordFailure(address);
    if (!locked) return;
    const until = new Date(locked.lockedUntil).toISOString();
    this.#logger.warn(
      { event: 'security.lockout', source: address, extension, failures: locked.failures, until },
      `source ${address} locked out until ${until} after ${locked.failures} failed authentications` +
        (extension ? ` (last tried extension ${extension})` : '') +
        '; check that phone\'s password, or add the address to sip.security.trusted_networks if it is yours',
    );
    this.#bus.emit('security.lockout', { source: address, failures: locked.failures, until: locked.lockedUntil, extension });
  }

  authSucceeded(address: string): void {
    this.lockout.recordSuccess(address);
  }

  get dropped(): { rate: number; scanner: number; lockedOut: number } {
    return { ...this.#dropped };
  }

  #isScanner(userAgent: string): boolean {
    const ua = userAgent.toLowerCase();
    return this.#scannerPatterns.some((p) => ua.includes(p));
  }

  #shouldLog(key: string): boolean {
    const now = Date.now();
    const last = this.#lastLogged.get(key);
    if (last !== undefined && now - last < 60_000) return false;
    this.#lastLogged.set(key, now);
    return true;
  }

  #sweep(): void {
    this.#rate.sweep();
    this.lockout.sweep();
    const cutoff = Date.now() - 60_000;
    for (const [key, at] of this.#lastLogged) if (at < cutoff) this.#lastLogged.delete(key);
  }
}
