// Commands a site answers on `site/{site}/cmd`: one handler per name, the answer
// published on the request's response topic with its correlation data. Idempotent
// by request id: a repeated id gets the stored answer, the handler does not run twice
// (answers are kept for a day, across restarts).
import type { Logger } from 'pino';
import { SyncError, errorBody } from './errors.ts';
import { encode, type HeaderFactory, type Request, type Response } from './protocol.ts';
import type { SyncStateStore } from './state-store.ts';

export type CommandHandler = (args: unknown) => Promise<unknown>;

export interface CommandResponderOptions {
  headers: HeaderFactory;
  state: SyncStateStore;
  reply: (topic: string, payload: Buffer, correlation: string) => Promise<void>;
  logger: Logger;
}

export const COMMAND_MEMORY_MS = 24 * 3600 * 1000;

export class CommandResponder {
  readonly #o: CommandResponderOptions;
  readonly #handlers = new Map<string, CommandHandler>();
  readonly #running = new Map<string, Promise<string>>();

  constructor(options: CommandResponderOptions) {
    this.#o = options;
  }

  register(name: string, handler: CommandHandler): void {
    this.#handlers.set(name, handler);
  }

  async handle(req: Request): Promise<void> {
    let answer = await this.#o.state.commandResponse(req.id);
    if (answer === undefined) {
      let running = this.#running.get(req.id);
      if (!running) {
        running = this.#run(req).finally(() => this.#running.delete(req.id));
        this.#running.set(req.id, running);
      }
      answer = await running;
    } else {
      this.#o.logger.info({ event: 'sync.command_repeat', id: req.id, name: req.name }, 'repeated command answered from memory');
    }
    await this.#o.reply(req.response_topic, Buffer.from(answer), req.correlation).catch((err: unknown) => {
      this.#o.logger.warn({ event: 'sync.command_reply_failed', id: req.id, err }, 'could not publish a command response');
    });
  }

  async #run(req: Request): Promise<string> {
    const base = { ...this.#o.headers.next('res'), request_id: req.id, correlation: req.correlation };
    let res: Response;
    const handler = this.#handlers.get(req.name);
    try {
      if (!handler) throw new SyncError('EUNKNOWNCOMMAND', `unknown command ${JSON.stringify(req.name)}; known: ${[...this.#handlers.keys()].join(', ')}`);
      const data = await handler(req.args);
      res = { ...base, status: 'ok', data };
    } catch (err) {
      res = { ...base, status: 'error', error: errorBody(err) };
    }
    this.#o.logger.info({ event: 'sync.command', id: req.id, name: req.name, status: res.status, code: res.error?.code }, 'command handled');
    const text = encode(res).toString('utf8');
    await this.#o.state.saveCommandResponse(req.id, text);
    return text;
  }
}
