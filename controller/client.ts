// branchctl's side: a short-lived MQTT client that asks the running controller (or
// a site) and waits for the answer. It needs no access to the controller's state dir.
import type { Logger } from 'pino';
import { RemoteError } from '../agent/sync/errors.ts';
import { MqttLink, type TlsFiles } from '../agent/sync/link.ts';
import { HeaderFactory, topics, type ControllerRequestName, type ControllerRequests } from '../agent/sync/protocol.ts';
import { Requester } from '../agent/sync/requester.ts';
import { SyncError } from '../agent/sync/errors.ts';

export interface ClientOptions {
  broker: string;
  protocolVersion?: 4 | 5;
  tls?: TlsFiles;
  username?: string;
  password?: string;
  connectTimeoutMs?: number;
  logger: Logger;
}

export class ControllerClient {
  readonly #o: ClientOptions;
  readonly clientId = `branchctl-${crypto.randomUUID().slice(0, 12)}`;
  #link: MqttLink | undefined;
  #requester: Requester | undefined;

  constructor(options: ClientOptions) {
    this.#o = options;
  }

  async connect(): Promise<void> {
    const timeoutMs = this.#o.connectTimeoutMs ?? 10_000;
    const link = new MqttLink({
      url: this.#o.broker,
      clientId: this.clientId,
      protocolVersion: this.#o.protocolVersion ?? 5,
      keepalive: 10,
      reconnectPeriodMs: 500,
      connectTimeoutMs: timeoutMs,
      ...(this.#o.tls ? { tls: this.#o.tls } : {}),
      ...(this.#o.username !== undefined ? { username: this.#o.username } : {}),
      ...(this.#o.password !== undefined ? { password: this.#o.password } : {}),
      logger: this.#o.logger,
    });
    this.#link = link;
    const requester = new Requester(link, new HeaderFactory(crypto.randomUUID()), topics.responses(this.clientId));
    this.#requester = requester;
    link.onMessage((topic, payload) => requester.onMessage(topic, payload));
    const up = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SyncError('ENOTCONNECTED', `cannot reach the broker ${this.#o.broker} within ${timeoutMs} ms`)), timeoutMs);
      link.onUp(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await link.subscribe([topics.responses(this.clientId)]);
    link.start();
    try {
      await up;
    } catch (err) {
      await link.stop({ graceful: false });
      throw err;
    }
    // The subscription is made in the connect handler; wait for it before asking.
    await link.subscribe([topics.responses(this.clientId)]);
  }

  /** Asks the controller; resolves with its data or throws RemoteError/ETIMEOUT. */
  async request<K extends ControllerRequestName>(name: K, args: ControllerRequests[K]['args'], timeoutMs = 10_000): Promise<ControllerRequests[K]['data']> {
    const requester = this.#requester;
    if (!requester) throw new SyncError('ENOTCONNECTED', 'not connected');
    let res;
    try {
      res = await requester.request(topics.controllerRequest, name, args, timeoutMs);
    } catch (err) {
      if (err instanceof SyncError && err.code === 'ETIMEOUT') {
        throw new SyncError('ETIMEOUT', `no answer from a controller on ${this.#o.broker} within ${timeoutMs} ms (is \`branchctl serve\` running?)`);
      }
      throw err;
    }
    if (res.status === 'error') throw new RemoteError(res.error?.code ?? 'EINTERNAL', res.error?.message ?? 'the controller reported an error');
    return res.data as ControllerRequests[K]['data'];
  }

  /** Asks the controller a request outside ControllerRequests (claims.*); the caller types the answer. */
  async call(name: string, args: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
    return this.request(name as ControllerRequestName, args as never, timeoutMs);
  }

  async close(): Promise<void> {
    this.#requester?.cancelAll('closing');
    await this.#link?.stop({ graceful: true });
  }
}
