// Readiness and watchdog notification for systemd (Type=notify, WatchdogSec=). The
// protocol is a datagram on the unix socket named by NOTIFY_SOCKET; Node has no unix
// datagram sockets, so each message is sent by systemd's own `systemd-notify`, run as
// a child. The unit sets NotifyAccess=all because the sender is that child, not the
// agent's main process; systemd-notify waits until the manager has read the message
// (its barrier), so the short-lived sender is never gone before it is attributed.
// Without NOTIFY_SOCKET (not started by systemd) every call does nothing.
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

export interface SystemdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  /** The sender; `systemd-notify` from PATH by default. */
  command?: string;
  logger: Logger;
}

export class SystemdNotifier {
  readonly #env: NodeJS.ProcessEnv;
  readonly #command: string;
  readonly #logger: Logger;
  #disabled: string | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #pinging = false;

  constructor(options: SystemdNotifierOptions) {
    this.#env = options.env ?? process.env;
    this.#command = options.command ?? 'systemd-notify';
    this.#logger = options.logger;
    if (!this.#env['NOTIFY_SOCKET']) this.#disabled = 'NOTIFY_SOCKET is not set';
  }

  get enabled(): boolean {
    return this.#disabled === undefined;
  }

  /**
   * The watchdog interval systemd asked for, halved as sd_watchdog_enabled() advises;
   * undefined when there is no watchdog for this process.
   */
  watchdogIntervalMs(): number | undefined {
    const usec = Number(this.#env['WATCHDOG_USEC']);
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    const pid = this.#env['WATCHDOG_PID'];
    if (pid !== undefined && Number(pid) !== process.pid) return undefined;
    return Math.max(1, Math.floor(usec / 2000));
  }

  /** Sends `VAR=value` assignments; resolves when systemd has taken them (or at once when disabled). */
  notify(...assignments: string[]): Promise<boolean> {
    if (this.#disabled !== undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const child = spawn(this.#command, assignments, { stdio: ['ignore', 'ignore', 'pipe'], env: this.#env });
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          this.#disabled = `${this.#command} is not installed`;
          this.#logger.warn({ event: 'systemd.notify_unavailable', command: this.#command }, `cannot notify systemd: ${this.#disabled}`);
        } else {
          this.#logger.warn({ event: 'systemd.notify_failed', err: err.message }, 'could not notify systemd');
        }
        resolve(false);
      });
      child.once('exit', (code) => {
        if (code !== 0) this.#logger.warn({ event: 'systemd.notify_failed', code, stderr: stderr.trim(), sent: assignments.filter((a) => !a.startsWith('STATUS=')) }, 'systemd-notify failed');
        resolve(code === 0);
      });
    });
  }

  ready(status: string): Promise<boolean> {
    return this.notify('READY=1', `STATUS=${status}`);
  }

  stopping(): Promise<boolean> {
    this.stopWatchdog();
    return this.notify('STOPPING=1', 'STATUS=stopping');
  }

  /**
   * Pings the watchdog at half the interval systemd set, while `healthy()` says so.
   * The ping is a timer on the event loop: an agent whose loop hangs stops pinging and
   * systemd restarts it (a slot on trial that keeps hanging is rolled back at boot).
   */
  startWatchdog(healthy: () => boolean = () => true): boolean {
    const interval = this.watchdogIntervalMs();
    if (!this.enabled || interval === undefined) return false;
    this.#watchdog = setInterval(() => {
      if (this.#pinging || !healthy()) return; // one ping in flight at most
      this.#pinging = true;
      void this.notify('WATCHDOG=1').finally(() => (this.#pinging = false));
    }, interval);
    this.#logger.info({ event: 'systemd.watchdog', intervalMs: interval }, 'systemd watchdog armed');
    return true;
  }

  stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }
}
