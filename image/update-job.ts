// The update as a controller job: the `firmware.update` site command takes a bundle
// (a URL the appliance downloads, or a path on it), runs the same install as
// `branchline update` into the configured slot tree, answers with every step's
// outcome, and reports each step upstream as it is journaled. After a successful
// switch the agent exits so that the service manager starts the new slot, whose
// post-boot verify commits it or rolls it back (reported the same way).
import { createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/config/types.ts';
import type { ActiveCallsSource } from '../firmware-hooks/probes/active-calls.ts';
import { Journal, type JournalEntry } from '../firmware-hooks/journal.ts';
import { HookFailure } from '../firmware-hooks/types.ts';
import { JournalReporter } from './journal-reporter.ts';
import { SlotTree } from './slots/tree.ts';
import { installUpdate, type UpdateResult } from './update.ts';
import type { NewOutboxMessage } from '../agent/sync/outbox.ts';

export const UPDATE_COMMAND = 'firmware.update';
/** A bundle larger than this is refused while downloading (x86-64 bundles are ~31 MB). */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

export type UpdateJobErrorCode = 'ENOSLOTS' | 'EBUSY' | 'EBADARGS' | 'EDOWNLOAD' | 'EHOOK_FAILED' | 'EHOOK_POSTPONED' | 'EUPDATE';

export class UpdateJobError extends Error {
  readonly code: UpdateJobErrorCode;
  constructor(code: UpdateJobErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface UpdateJobArgs {
  /** http(s) URL of the bundle. */
  url?: string;
  /** Absolute path of a bundle already on the appliance. */
  path?: string;
  /** Seconds pre-reboot may wait for calls to end (default firmware.call_deadline). */
  deadline_s?: number;
}

export interface UpdateJobResult extends UpdateResult {
  /** Every journaled step of this update, in order. */
  hooks: JournalEntry[];
  /** True when the agent is about to exit so the new slot starts. */
  restarting: boolean;
}

export interface UpdateJobsOptions {
  config: Pick<AgentConfig, 'firmware' | 'state_dir'>;
  /** The site's command registry and outbox (agent/sync). */
  registerCommand: (name: string, handler: (args: unknown) => Promise<unknown>) => void;
  enqueue: (msg: NewOutboxMessage) => Promise<unknown>;
  calls: ActiveCallsSource;
  /** Exit so that the service manager starts the selected slot. */
  requestRestart: () => void;
  logger: Logger;
}

function parseArgs(raw: unknown): UpdateJobArgs {
  const a = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const url = a['url'];
  const file = a['path'];
  const deadline = a['deadline_s'];
  if ((url === undefined) === (file === undefined)) throw new UpdateJobError('EBADARGS', 'firmware.update: give exactly one of "url" (http or https) and "path" (absolute)');
  if (url !== undefined && (typeof url !== 'string' || !/^https?:\/\//.test(url))) throw new UpdateJobError('EBADARGS', 'firmware.update: "url" must be an http:// or https:// URL');
  if (file !== undefined && (typeof file !== 'string' || !path.isAbsolute(file))) throw new UpdateJobError('EBADARGS', 'firmware.update: "path" must be an absolute path');
  if (deadline !== undefined && (typeof deadline !== 'number' || !Number.isFinite(deadline) || deadline < 0)) throw new UpdateJobError('EBADARGS', 'firmware.update: "deadline_s" must be a number of seconds');
  return { ...(url !== undefined ? { url: url as string } : {}), ...(file !== undefined ? { path: file as string } : {}), ...(deadline !== undefined ? { deadline_s: deadline as number } : {}) };
}

/**
 * The URL as logs and answers show it: without user:password and without the query
 * (a pre-signed URL carries its credential there).
 */
export function urlForLogs(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(unparseable URL)';
  }
}

export class UpdateJobs {
  readonly #o: UpdateJobsOptions;
  #reporter: JournalReporter | undefined;
  #busy = false;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(options: UpdateJobsOptions) {
    this.#o = options;
  }

  get #workDir(): string {
    return path.join(this.#o.config.state_dir, 'firmware');
  }

  start(): void {
    const { config } = this.#o;
    this.#o.registerCommand(UPDATE_COMMAND, (args) => this.run(parseArgs(args)));
    if (!config.firmware.slots) return;
    this.#reporter = new JournalReporter({
      journalFile: SlotTree.open(config.firmware.slots, { create: true }).journalFile,
      stateDir: this.#workDir,
      enqueue: this.#o.enqueue,
      intervalMs: config.firmware.report_interval * 1000,
      logger: this.#o.logger,
    });
    this.#reporter.start();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#restartTimer);
    await this.#reporter?.stop();
  }

  async run(args: UpdateJobArgs): Promise<UpdateJobResult> {
    const { config, logger } = this.#o;
    const slots = config.firmware.slots;
    if (!slots) throw new UpdateJobError('ENOSLOTS', 'this appliance has no slot tree configured (firmware.slots): it cannot install updates');
    if (this.#busy) throw new UpdateJobError('EBUSY', 'an update is already running');
    this.#busy = true;
    const tree = SlotTree.open(slots, { create: true });
    let downloaded: string | undefined;
    try {
      let bundle: string;
      if (args.url) {
        downloaded = path.join(this.#workDir, `incoming-${process.pid}-${Date.now()}.bundle`);
        await this.#download(args.url, downloaded);
        bundle = downloaded;
      } else {
        bundle = args.path as string;
        if (!existsSync(bundle)) throw new UpdateJobError('EBADARGS', `firmware.update: no bundle at ${bundle}`);
      }
      logger.info({ event: 'firmware.update_started', source: args.url !== undefined ? urlForLogs(args.url) : args.path }, 'update ordered by the controller');
      let result: UpdateResult;
      try {
        result = await installUpdate({
          tree,
          bundle,
          calls: this.#o.calls,
          callDeadlineMs: (args.deadline_s ?? config.firmware.call_deadline) * 1000,
          stateDir: config.state_dir,
        });
      } catch (err) {
        if (err instanceof HookFailure) throw new UpdateJobError(err.code, `${err.hook}: ${err.outcome.detail}`, { cause: err });
        throw new UpdateJobError('EUPDATE', (err as Error).message, { cause: err });
      } finally {
        // The install's outcome stands even if its report must wait for the next round.
        await this.#reporter?.flush().catch((err: unknown) => logger.warn({ event: 'firmware.report_failed', err }, 'could not report the update journal; retrying later'));
      }
      const hooks = new Journal(tree.journalFile).entries().filter((e) => e.update_id === result.updateId);
      const restarting = result.status === 'selected' && config.firmware.restart_after_update;
      logger.info({ event: 'firmware.update_selected', version: result.version, slot: result.slot, restarting }, `update ${result.version} installed into slot ${result.slot}`);
      if (restarting) {
        // Leave time for the answer to reach the controller, then hand over to the new slot.
        this.#restartTimer = setTimeout(() => this.#o.requestRestart(), 1000);
      }
      return { ...result, hooks, restarting };
    } finally {
      if (downloaded) rmSync(downloaded, { force: true });
      this.#busy = false;
    }
  }

  async #download(url: string, file: string): Promise<void> {
    const shown = urlForLogs(url);
    // fetch's own messages quote the URL whole; its error is not kept as the cause for the same reason.
    const reason = (err: unknown): string => (err as Error).message.split(url).join(shown);
    mkdirSync(path.dirname(file), { recursive: true });
    const timeoutMs = this.#o.config.firmware.download_timeout * 1000;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
    } catch (err) {
      throw new UpdateJobError('EDOWNLOAD', `cannot fetch ${shown}: ${reason(err)}`);
    }
    if (!res.ok || !res.body) throw new UpdateJobError('EDOWNLOAD', `cannot fetch ${shown}: HTTP ${res.status}`);
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_BUNDLE_BYTES) throw new UpdateJobError('EDOWNLOAD', `${shown} is ${declared} bytes, more than a bundle may be (${MAX_BUNDLE_BYTES})`);
    let seen = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        if (seen > MAX_BUNDLE_BYTES) cb(new UpdateJobError('EDOWNLOAD', `${shown} is larger than a bundle may be (${MAX_BUNDLE_BYTES} bytes)`));
        else cb(null, chunk);
      },
    });
    try {
      // The web stream type of fetch() and node:stream/web differ only in name.
      await pipeline(Readable.fromWeb(res.body as Parameters<typeof Readable.fromWeb>[0]), limit, createWriteStream(file, { mode: 0o600 }));
    } catch (err) {
      rmSync(file, { force: true });
      if (err instanceof UpdateJobError) throw err;
      throw new UpdateJobError('EDOWNLOAD', `download of ${shown} failed: ${reason(err)}`);
    }
    this.#o.logger.info({ event: 'firmware.downloaded', url: shown, bytes: statSync(file).size }, 'bundle downloaded');
  }
}
