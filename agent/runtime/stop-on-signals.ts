import type { Logger } from 'pino';

/**
 * SIGTERM/SIGINT stop a service once, cleanly: the exit code says whether stop()
 * succeeded (systemd and the A/B verify hook read it). Shared by the agent and the
 * controller so both daemons behave the same under a service manager.
 */
export function stopOnSignals(service: string, logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: `${service}.stopping`, signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
