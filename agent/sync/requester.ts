// The asking side of request/response over MQTT: publishes a request carrying its
// response topic and correlation data (also as MQTT 5 properties), and matches each
// answer to its request, with a timeout whose message names what was awaited.
import { SyncError } from './errors.ts';
import type { MqttLink } from './link.ts';
import { encode, parseResponse, type HeaderFactory, type Request, type Response } from './protocol.ts';

interface Waiting {
  resolve: (res: Response) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Requester {
  readonly #link: MqttLink;
  readonly #headers: HeaderFactory;
  readonly responseTopic: string;
  readonly #waiting = new Map<string, Waiting>();

  constructor(link: MqttLink, headers: HeaderFactory, responseTopic: string) {
    this.#link = link;
    this.#headers = headers;
    this.responseTopic = responseTopic;
  }

  /** Feed every message received on the response topic here. */
  onMessage(topic: string, payload: Buffer): void {
    if (topic !== this.responseTopic) return;
    let res: Response;
    try {
      res = parseResponse(payload);
    } catch {
      return;
    }
    const w = this.#waiting.get(res.correlation);
    if (!w) return; // late, or a duplicate answer: the request is already settled
    this.#waiting.delete(res.correlation);
    clearTimeout(w.timer);
    w.resolve(res);
  }

  /**
   * Sends `name` to `topic`; resolves with the response (status ok or error). Rejects
   * with ETIMEOUT or ENOTCONNECTED. `id` makes a retry idempotent at the receiver.
   */
  request(topic: string, name: string, args: unknown, timeoutMs: number, id?: string): Promise<Response> {
    const header = this.#headers.next('cmd');
    if (id) header.id = id;
    const correlation = crypto.randomUUID();
    const req: Request = { ...header, name, args: args ?? {}, response_topic: this.responseTopic, correlation };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(correlation);
        reject(new SyncError('ETIMEOUT', `no response to "${name}" on ${topic} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(correlation, { resolve, reject, timer });
      this.#link
        .publish(topic, encode(req), { properties: { responseTopic: this.responseTopic, correlationData: Buffer.from(correlation) } })
        .catch((err: unknown) => {
          clearTimeout(timer);
          this.#waiting.delete(correlation);
          reject(err as Error);
        });
    });
  }

  /** Rejects everything still waiting (on stop). */
  cancelAll(reason: string): void {
    for (const [key, w] of this.#waiting) {
      clearTimeout(w.timer);
      w.reject(new SyncError('ENOTCONNECTED', reason));
      this.#waiting.delete(key);
    }
  }
}
