// The zero-setup broker: with no `mqtt.url` the agent runs Aedes in-process on
// `mqtt.embedded.listen` (127.0.0.1:1883 by default) and connects to it, so a single
// box or a lab needs nothing else. Aedes speaks MQTT 3.1.1 only, which is why the
// protocol never depends on MQTT 5 features.
import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { SyncError } from './errors.ts';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  /** Seconds a client whose socket stops draining may hold the broker's writes. */
  drainTimeout: number;
  logger: Logger;
}

export class EmbeddedBroker {
  readonly #o: EmbeddedBrokerOptions;
  #broker: Aedes | undefined;
  #server: net.Server | undefined;

  constructor(options: EmbeddedBrokerOptions) {
    this.#o = options;
  }

  /** The address clients should connect to (a wildcard listen means loopback). */
  get url(): string {
    const address = this.#server?.address();
    const port = typeof address === 'object' && address ? address.port : this.#o.port;
    const host = this.#o.host === '0.0.0.0' || this.#o.host === '::' ? '127.0.0.1' : this.#o.host;
    return `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async start(): Promise<void> {
    const broker = await Aedes.createBroker({ drainTimeout: this.#o.drainTimeout * 1000 });
    this.#broker = broker;
    const server = net.createServer(broker.handle);
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new SyncError('EBROKER', `embedded MQTT broker cannot listen on ${this.#o.host}:${this.#o.port}: ${err.message}`, { cause: err })));
      server.listen(this.#o.port, this.#o.host, () => resolve());
    });
    this.#o.logger.info({ event: 'mqtt.embedded_broker', url: this.url }, 'embedded MQTT broker listening');
  }

  async stop(): Promise<void> {
    const server = this.#server;
    const broker = this.#broker;
    this.#server = undefined;
    this.#broker = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
