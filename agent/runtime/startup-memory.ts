// Gives back the memory start-up used and an idle agent does not, once, after start.
//
// Start-up allocates much more than the agent keeps: the config is parsed and
// validated, every module of the bundle is loaded and initialised, the store is
// migrated, and V8 grows its young generation to the 4 MB semi-spaces
// (--max-semi-space-size) for that allocation rate. V8 then keeps those pages: an idle
// process never collects with "reduce memory" (that is what V8 does under memory
// pressure), and a regular full collection frees objects but pools the pages. Measured
// on the single executable, idle with one phone: the new space held 5.3 MB of pages
// for 1.3 MB of objects, and a regular full collection left RSS unchanged.
//
// So, a few seconds after the agent is ready and while it is idle, it runs the
// collection V8 runs under memory pressure (CollectAllAvailableGarbage: full
// collections until nothing more is freed, then the young generation shrunk and the
// pooled pages released): -4 to -5 MB of RSS at idle
// (docs/decisions/0004-single-executable.md, Idle memory). Once: under load the young
// generation grows back as it should. Not while the agent is busy (a box that reboots
// into a storm of re-registrations) or a call is up (a pause would be heard): it waits
// for a quiet interval, and gives up after a minute of trying. The collection took
// 40 ms with one phone on the 2-core build machine.
//
// The collection comes from V8's gc extension (`gc({ flavor: 'last-resort' })`),
// exposed to one fresh vm context only, never to the agent's own global scope.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

export interface StartupMemoryOptions {
  /** Wait this long after start before the first try (ms). */
  delayMs?: number;
  /** Between tries while the agent is busy (ms). */
  retryMs?: number;
  /** Tries before giving up. */
  attempts?: number;
  /** Busy = event-loop utilization over the last interval above this. */
  maxUtilization?: number;
  /** Busy as well when this says so (the agent: a call is up, its audio must not stall). */
  busy?: () => boolean;
}

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** V8's gc(), from a vm context of its own; undefined if this V8 does not offer it. */
function memoryReducingGc(): GcFunction | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Schedules the one memory-reducing collection; returns a cancel function (for stop).
 * The timers are unref'd: they never keep the process alive.
 */
export function releaseStartupMemory(logger: Logger, options: StartupMemoryOptions = {}): () => void {
  const delayMs = options.delayMs ?? 2000;
  const retryMs = options.retryMs ?? 5000;
  const attempts = options.attempts ?? 12;
  const maxUtilization = options.maxUtilization ?? 0.3;
  let timer: NodeJS.Timeout | undefined;
  let tries = 0;
  let last: EventLoopUtilization = performance.eventLoopUtilization();

  const attempt = (): void => {
    timer = undefined;
    tries++;
    const elu = performance.eventLoopUtilization(last);
    last = performance.eventLoopUtilization();
    if (elu.utilization > maxUtilization || options.busy?.() === true) {
      if (tries < attempts) {
        timer = setTimeout(attempt, retryMs).unref();
      } else {
        logger.info({ event: 'memory.startup_release_skipped', utilization: Number(elu.utilization.toFixed(2)) }, 'agent stayed busy: start-up memory left to V8');
      }
      return;
    }
    const gc = memoryReducingGc();
    if (gc === undefined) return;
    const before = process.memoryUsage();
    const t0 = performance.now();
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const ms = performance.now() - t0;
    const after = process.memoryUsage();
    const mb = (b: number): number => Math.round(b / 104857.6) / 10;
    logger.info(
      { event: 'memory.startup_released', ms: Math.round(ms), rssMb: [mb(before.rss), mb(after.rss)], heapMb: [mb(before.heapTotal), mb(after.heapTotal)] },
      'start-up memory released',
    );
  };
  timer = setTimeout(attempt, delayMs).unref();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}
