// The media subsystem as the agent's composition root sees it: one port pool,
// one packet clock, and a factory for sessions and relays that share them.
import type { Logger } from 'pino';
import { MediaStateError } from './errors.ts';
import type { CodecName } from './g711.ts';
import { MediaClock, type MediaClockStats } from './media-clock.ts';
import { PortPool, type PortRange } from './port-pool.ts';
import { MediaRelay } from './relay.ts';
import { RtpSession, type RtpSessionOptions } from './rtp-session.ts';
import { SdpOrigin, type LocalMedia } from './sdp.ts';
import { callProgressTone, type ToneSource } from './tone-generator.ts';
import type { CountryCode, ToneName } from './tone-tables.ts';

export interface MediaConfig {
  /** Address RTP sockets bind to (e.g. 0.0.0.0, or the LAN address). */
  bindAddress: string;
  /** Address written into our SDP; defaults to bindAddress (must not be 0.0.0.0 then). */
  advertiseAddress?: string;
  /** Even/odd port pairs are taken from here; without it the OS picks (tests only). */
  portRange?: PortRange;
  /** Codec preference for offers and answers. */
  codecs?: CodecName[];
  /** Call-progress tones to play. */
  country?: CountryCode;
  latching?: boolean;
  /** Hang-up hint: a session emits 'timeout' after this long without RTP (0: never). */
  mediaTimeoutMs?: number;
  rtcpIntervalMs?: number;
}

export type SessionOptions = Omit<RtpSessionOptions, 'ports' | 'clock'>;

export class MediaEngine {
  readonly config: MediaConfig;
  readonly logger: Logger;
  readonly clock: MediaClock;
  readonly ports: PortPool;
  readonly #sessions = new Set<RtpSession>();
  #running = false;

  constructor(config: MediaConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.clock = new MediaClock();
    this.ports = new PortPool(config.bindAddress, config.portRange);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.clock.start((err) => this.logger.error({ err }, 'media clock listener failed'));
    this.logger.info(
      { bind: this.config.bindAddress, ports: this.config.portRange ?? 'ephemeral', country: this.config.country ?? 'US' },
      'media engine started',
    );
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    await Promise.all([...this.#sessions].map((s) => s.stop('shutdown')));
    this.#sessions.clear();
    this.clock.stop();
  }

  /** The address to put into our SDP. */
  get advertiseAddress(): string {
    return this.config.advertiseAddress ?? this.config.bindAddress;
  }

  /** A started session on a fresh port pair. Stop it with `session.stop()`. */
  async createSession(options: SessionOptions = {}): Promise<RtpSession> {
    if (!this.#running) throw new MediaStateError('media engine not started');
    const session = new RtpSession({
      latching: this.config.latching ?? true,
      mediaTimeoutMs: this.config.mediaTimeoutMs ?? 0,
      rtcpIntervalMs: this.config.rtcpIntervalMs ?? 5000,
      logger: this.logger,
      ...options,
      ports: this.ports,
      clock: this.clock,
    });
    await session.start();
    this.#sessions.add(session);
    session.once('stopped', () => this.#sessions.delete(session));
    return session;
  }

  /** Parameters for sdp.ts (createOffer/answerOffer) describing `session`. */
  localMedia(session: RtpSession, origin: SdpOrigin, extra: Partial<LocalMedia> = {}): LocalMedia {
    return {
      address: this.advertiseAddress,
      port: session.localPort,
      codecs: this.config.codecs ?? ['PCMU', 'PCMA'],
      origin,
      ...extra,
    };
  }

  /** A relay between two sessions, started. */
  relay(a: RtpSession, b: RtpSession): MediaRelay {
    const relay = new MediaRelay(a, b, this.logger);
    relay.start();
    return relay;
  }

  /** A call-progress tone of the configured country. */
  tone(name: ToneName, durationMs?: number): ToneSource {
    return callProgressTone(this.config.country ?? 'US', name, durationMs);
  }

  stats(): { sessions: number; portsInUse: number; clock: MediaClockStats } {
    return { sessions: this.#sessions.size, portsInUse: this.ports.inUse, clock: this.clock.stats() };
  }
}
