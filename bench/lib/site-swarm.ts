// Many lightweight simulated sites for controller benchmarks: one MQTT.js connection
// per site, speaking the site side of the protocol (agent/sync/protocol.ts) — a
// retained `online` birth with an `offline` Last Will, `up/telemetry` envelopes with a
// persistent-looking seq, at most `window` awaiting the controller's ack, resent if no
// ack comes — but with the outbox in memory and no SQLite, SIP or health monitor. What
// is measured is the controller and the broker, not the sites.
import mqtt, { type MqttClient } from 'mqtt';
import { encode, PROTOCOL_VERSION, topics, type SiteState, type TelemetryData, type UpMessage } from '../../agent/sync/protocol.ts';

export interface SwarmOptions {
  url: string;
  sites: number;
  /** Prefix of the site ids: `<prefix>-0001`. */
  prefix: string;
  window: number;
  /** Connections opened at once while connecting. */
  connectConcurrency?: number;
}

/** A telemetry sample of a realistic size (~1.3 KB of JSON). */
function sample(i: number): TelemetryData {
  return {
    mode: 'normal',
    uptime_s: 3600 + i,
    system: {
      cpu: { load_pct: 12.5, cores: 4 },
      memory: { total: 4_000_000_000, used: 1_200_000_000, available: 2_800_000_000 },
      disks: [{ mount: '/', fs: '/dev/mmcblk0p2', size: 32_000_000_000, used: 6_000_000_000, use_pct: 18.7 }],
      temperatures: { main: 48.2, max: 51, cores: [47, 49, 48, 51] },
      interfaces: [
        { name: 'eth0', ip4: '198.18.0.10', ip6: 'fe80::1', mac: '02:00:00:00:00:01', state: 'up', speed_mbps: 1000, rx_bytes: 123456789, tx_bytes: 98765432 },
        { name: 'wwan0', ip4: '', ip6: '', mac: '02:00:00:00:00:02', state: 'down', speed_mbps: null, rx_bytes: 0, tx_bytes: 0 },
      ],
    },
    agent: {
      registrations: 40,
      active_calls: 3,
      channels: { total: 24, in_use: 3 },
      outbox: { records: { count: 0, bytes: 0 }, events: { count: 2, bytes: 600 }, telemetry: { count: 1, bytes: 1200 }, voicemail: { count: 0, bytes: 0 } },
      wan: { link: 'up', controller: 'online', probes: 'ok' },
    },
  };
}

/** Bytes of one up/telemetry message as the swarm sends it (for the raw comparison). */
export function telemetryMessageBytes(site: string): number {
  const msg: UpMessage<TelemetryData> = { v: PROTOCOL_VERSION, id: crypto.randomUUID(), stream: 'telemetry', seq: 1, boot: crypto.randomUUID(), ts: Date.now(), site, type: 'telemetry', data: sample(1) };
  return encode(msg).length;
}

class SimSite {
  readonly id: string;
  readonly boot = crypto.randomUUID();
  readonly client: MqttClient;
  #seq = 0;
  #toSend = 0;
  readonly #inflight = new Map<string, { payload: Buffer; at: number }>();
  #window: number;
  #onDone: (() => void) | undefined;
  acked = 0;

  constructor(id: string, client: MqttClient, window: number) {
    this.id = id;
    this.client = client;
    this.#window = window;
    client.on('message', (_topic, payload) => {
      const ack = JSON.parse(payload.toString()) as { ids: string[] };
      for (const msgId of ack.ids) if (this.#inflight.delete(msgId)) this.acked++;
      this.#pump();
    });
  }

  /** Publishes `count` telemetry messages; resolves when the controller acked them all. */
  send(count: number): Promise<void> {
    this.#toSend += count;
    return new Promise((resolve) => {
      this.#onDone = resolve;
      this.#pump();
    });
  }

  /** Resends whatever waited longer than `ms` for an ack (a lost ack, a dead instance). */
  resendOlderThan(ms: number, now = Date.now()): number {
    let n = 0;
    for (const [, m] of this.#inflight) {
      if (now - m.at < ms) continue;
      m.at = now;
      n++;
      this.client.publish(topics.up(this.id, 'telemetry'), m.payload, { qos: 1 });
    }
    return n;
  }

  #pump(): void {
    while (this.#toSend > 0 && this.#inflight.size < this.#window) {
      this.#toSend--;
      const seq = ++this.#seq;
      const msg: UpMessage<TelemetryData> = { v: PROTOCOL_VERSION, id: crypto.randomUUID(), stream: 'telemetry', seq, boot: this.boot, ts: Date.now(), site: this.id, type: 'telemetry', data: sample(seq) };
      const payload = encode(msg);
      this.#inflight.set(msg.id, { payload, at: Date.now() });
      this.client.publish(topics.up(this.id, 'telemetry'), payload, { qos: 1 });
    }
    if (this.#toSend === 0 && this.#inflight.size === 0 && this.#onDone) {
      const done = this.#onDone;
      this.#onDone = undefined;
      done();
    }
  }
}

export class SiteSwarm {
  readonly #o: SwarmOptions;
  readonly sites: SimSite[] = [];

  constructor(options: SwarmOptions) {
    this.#o = options;
  }

  get clients(): MqttClient[] {
    return this.sites.map((s) => s.client);
  }

  async connect(): Promise<void> {
    const { url, sites, prefix, window } = this.#o;
    const ids = Array.from({ length: sites }, (_, i) => `${prefix}-${String(i + 1).padStart(4, '0')}`);
    const concurrency = this.#o.connectConcurrency ?? 50;
    for (let i = 0; i < ids.length; i += concurrency) {
      await Promise.all(
        ids.slice(i, i + concurrency).map(async (id) => {
          const state = (s: 'online' | 'offline'): SiteState => ({ v: PROTOCOL_VERSION, id: crypto.randomUUID(), stream: 'state', seq: 1, boot: 'swarm', ts: Date.now(), site: id, state: s, agent: 'swarm', config_version: 0, since: Date.now() });
          const client = await mqtt.connectAsync(url, {
            clientId: `swarm-${id}`,
            protocolVersion: 5,
            keepalive: 60,
            reconnectPeriod: 1000,
            will: { topic: topics.siteState(id), payload: encode(state('offline')), qos: 1, retain: true },
          });
          await client.subscribeAsync(topics.ack(id), { qos: 1 });
          await client.publishAsync(topics.siteState(id), encode(state('online')), { qos: 1, retain: true });
          this.sites.push(new SimSite(id, client, window));
        }),
      );
    }
  }

  /** Every site sends `perSite` telemetry messages; resolves when all are acked. */
  async sendAll(perSite: number, resendAfterMs = 10_000): Promise<{ resent: number }> {
    let resent = 0;
    const timer = setInterval(() => {
      for (const s of this.sites) resent += s.resendOlderThan(resendAfterMs);
    }, 1000);
    try {
      await Promise.all(this.sites.map((s) => s.send(perSite)));
    } finally {
      clearInterval(timer);
    }
    return { resent };
  }

  /** Clears the retained births (so the next run starts clean) and disconnects. */
  async close(): Promise<void> {
    await Promise.all(
      this.sites.map(async (s) => {
        await s.client.publishAsync(topics.siteState(s.id), Buffer.alloc(0), { qos: 1, retain: true }).catch(() => undefined);
        await s.client.endAsync().catch(() => undefined);
      }),
    );
    this.sites.length = 0;
  }
}
