// A client of the simulated PSTN's control socket (control-protocol.ts): requests
// answered in order of their ids, events delivered to listeners. Used by
// `branchline sim call` and by tests that drive a card from outside its process.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { ControlEvent, ControlRequest, ControlResponse } from './control-protocol.ts';
import { ControlError, MAX_CONTROL_LINE, parseControlAddress } from './control-server.ts';

type Args<R> = R extends { id: number } ? Omit<R, 'id'> : never;
export type ControlArgs = Args<ControlRequest>;

export class SimControlClient extends EventEmitter<{ event: [ControlEvent]; close: [] }> {
  readonly #socket: net.Socket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #buffer = '';

  private constructor(socket: net.Socket) {
    super();
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const p of this.#pending.values()) p.reject(new ControlError('ECLOSED', 'the control socket closed'));
      this.#pending.clear();
      this.emit('close');
    });
  }

  /** Connects to host:port or a Unix socket path; rejects with the system's reason (ECONNREFUSED...). */
  static connect(address: string, timeoutMs = 5000): Promise<SimControlClient> {
    const where = parseControlAddress(address);
    return new Promise((resolve, reject) => {
      const socket = 'path' in where ? net.connect(where.path) : net.connect(where.port, where.host);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ControlError('ETIMEOUT', `no connection to ${address} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new SimControlClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Sends one request; resolves with its result, rejects with ControlError(code) when it failed. */
  request<T = unknown>(args: ControlArgs): Promise<T> {
    const id = this.#nextId++;
    if (this.#socket.destroyed) return Promise.reject(new ControlError('ECLOSED', 'the control socket is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#socket.write(`${JSON.stringify({ ...args, id })}\n`);
    });
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }

  #data(chunk: Buffer): void {
    this.#buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) !== -1) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      if (!line.trim()) continue;
      let message: ControlResponse | ControlEvent;
      try {
        message = JSON.parse(line) as ControlResponse | ControlEvent;
      } catch {
        this.#fail(`the control socket sent a line that is not JSON: ${line.slice(0, 80)}`);
        return;
      }
      if ('event' in message) {
        this.emit('event', message);
        continue;
      }
      const pending = this.#pending.get(message.id);
      if (!pending) continue;
      this.#pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new ControlError(message.error?.code ?? 'EFAILED', message.error?.message ?? 'request failed'));
    }
    if (this.#buffer.length > MAX_CONTROL_LINE) this.#fail(`the control socket sent a line longer than ${MAX_CONTROL_LINE} bytes`);
  }

  /** The other end is not speaking the protocol: every request waiting fails with EPROTOCOL. */
  #fail(reason: string): void {
    this.#buffer = '';
    for (const p of this.#pending.values()) p.reject(new ControlError('EPROTOCOL', reason));
    this.#pending.clear();
    this.#socket.destroy();
  }
}
