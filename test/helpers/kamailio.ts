// Kamailio 5.6 as a real registrar with digest auth: the reference SIPp scenarios are
// proven against, and the anchor of the registration benchmark. The script is
// bench/kamailio/registrar.cfg; the password of user U is kamailioPassword(U).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_DOMAIN, REPO_ROOT } from './agent.ts';
import { freeUdpTcpPort } from './ports.ts';
import { isRunning, killNow, stopProcess, track, waitExit } from './proc.ts';

export const KAMAILIO_TEMPLATE = path.join(REPO_ROOT, 'bench', 'kamailio', 'registrar.cfg');

/** The password registrar.cfg derives for a user (no user database needed). */
export function kamailioPassword(user: string): string {
  return `pw${user}`;
}

export interface StartKamailioOptions {
  /** Worker processes per listen socket (-n). */
  workers?: number;
  domain?: string;
  minExpires?: number;
  maxExpires?: number;
  defaultExpires?: number;
  /** Shared memory in MB (-m). */
  sharedMemoryMb?: number;
  /** Pin every Kamailio process to these CPUs ("1", "0,1") with taskset. */
  cpus?: string;
  port?: number;
  readyTimeoutMs?: number;
  /** The script template (default registrar.cfg; bench/kamailio/proxy.cfg adds a stateful proxy). */
  template?: string;
  /** Preprocessor names defined for the script (-A NAME), e.g. AUTH_INVITE for proxy.cfg. */
  defines?: string[];
}

export interface KamailioHandle {
  port: number;
  domain: string;
  /** The main process (workers are its children, in its process group). */
  pid: number;
  /** performance.now() when the process was spawned: the origin of cold-start times. */
  spawnedAt: number;
  /** Every process of this Kamailio: main, workers, timers. */
  pids(): Promise<number[]>;
  output(): string;
  running(): boolean;
  stop(): Promise<void>;
  kill(): void;
}

export class KamailioStartError extends Error {
  readonly code = 'EKAMAILIOSTART';
}

/** Renders the template; throws if a placeholder is left. */
export async function renderKamailioConfig(values: Record<string, string | number>, template = KAMAILIO_TEMPLATE): Promise<string> {
  let text = await readFile(template, 'utf8');
  for (const [name, value] of Object.entries(values)) text = text.split(`{{${name}}}`).join(String(value));
  const left = /\{\{(\w+)\}\}/.exec(text);
  if (left) throw new KamailioStartError(`${path.basename(template)} placeholder {{${left[1]}}} has no value`);
  return text;
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

export async function startKamailio(opts: StartKamailioOptions = {}): Promise<KamailioHandle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-kamailio-'));
  const port = opts.port ?? (await freeUdpTcpPort());
  const domain = opts.domain ?? DEFAULT_DOMAIN;
  const cfg = path.join(dir, 'registrar.cfg');
  await writeFile(
    cfg,
    await renderKamailioConfig({
      REALM: domain,
      MIN_EXPIRES: opts.minExpires ?? 60,
      MAX_EXPIRES: opts.maxExpires ?? 7200,
      DEFAULT_EXPIRES: opts.defaultExpires ?? 3600,
    }, opts.template),
  );
  const args = [
    '-f', cfg,
    '-DD', '-E',
    '-n', String(opts.workers ?? 1),
    '-m', String(opts.sharedMemoryMb ?? 256),
    '-M', '16',
    '-P', path.join(dir, 'kamailio.pid'),
    '-Y', dir,
    '-l', `udp:127.0.0.1:${port}`,
    '-l', `tcp:127.0.0.1:${port}`,
    ...(opts.defines ?? []).flatMap((name) => ['-A', name]),
  ];
  // Detached: Kamailio forks its workers; they share the group we kill at the end.
  const spawnedAt = performance.now();
  const child =
    opts.cpus === undefined
      ? spawn('kamailio', args, { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', opts.cpus, 'kamailio', ...args], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child, { group: true });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-50_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const cleanup = async (): Promise<void> => {
    await stopProcess(child, { signal: 'SIGTERM', graceMs: 5000 });
    await rm(dir, { recursive: true, force: true });
  };

  // Ready when its TCP listener accepts: UDP and TCP sockets open together, after
  // the script loaded.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (!(await tcpAccepts(port))) {
    if (!isRunning(child)) {
      const exit = await waitExit(child);
      await cleanup();
      throw new KamailioStartError(`kamailio exited (${exit.code ?? exit.signal}) before listening:\n${output}`);
    }
    if (Date.now() > deadline) {
      await cleanup();
      throw new KamailioStartError(`kamailio not listening on ${port} after ${opts.readyTimeoutMs ?? 15_000} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const pid = child.pid ?? -1;
  return {
    port,
    domain,
    pid,
    spawnedAt,
    pids: () => processGroupPids(pid),
    output: () => output,
    running: () => isRunning(child),
    stop: cleanup,
    kill: () => killNow(child),
  };
}

/** The processes whose process group is `pgid`, from /proc. */
export async function processGroupPids(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // Fields after the ")" that closes the command name: state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}
