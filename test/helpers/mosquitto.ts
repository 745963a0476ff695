// A real Mosquitto for one test file: a two-line config on a free loopback port,
// started as a child we track and stop by its own PID. Stopping it is how a
// single-host test cuts the "WAN"; start() again on the same port restores it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freeUdpTcpPort } from './ports.ts';
import { isRunning, killNow, stopProcess, track } from './proc.ts';

export interface MosquittoHandle {
  port: number;
  url: string;
  /** The broker's stderr/stdout so far (for a failing test's message). */
  output(): string;
  /** Starts it again on the same port (after stop() or kill()). */
  start(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL: the broker vanishes, connections are reset. */
  kill(): void;
  running(): boolean;
  /** The broker's PID while it runs (to send it SIGHUP: reload the password file and ACL). */
  pid(): number | undefined;
  /** Stops it and removes its folder. */
  cleanup(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(opts: { port?: number; extraConfig?: string[] } = {}): Promise<MosquittoHandle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-mosquitto-'));
  const port = opts.port ?? (await freeUdpTcpPort());
  const conf = path.join(dir, 'mosquitto.conf');
  // set_tcp_nodelay: Mosquitto otherwise lets Nagle hold small packets (acks,
  // windowed publishes) for a delayed ACK; docs/sync.md recommends it for production.
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'set_tcp_nodelay true', ...(opts.extraConfig ?? [])].join('\n') + '\n');
  let child: ChildProcess | undefined;
  let out = '';

  const start = async (): Promise<void> => {
    if (child && isRunning(child)) return;
    const c = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(c);
    child = c;
    c.stdout?.setEncoding('utf8');
    c.stderr?.setEncoding('utf8');
    c.stdout?.on('data', (d: string) => (out = (out + d).slice(-20_000)));
    c.stderr?.on('data', (d: string) => (out = (out + d).slice(-20_000)));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!isRunning(c)) throw new Error(`mosquitto exited at start:\n${out}`);
      if (await portOpen(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    killNow(c);
    throw new Error(`mosquitto did not listen on ${port} within 10 s:\n${out}`);
  };

  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    output: () => out,
    start,
    stop: async () => {
      if (child) await stopProcess(child, { graceMs: 5000 });
    },
    kill: () => {
      if (child) killNow(child);
    },
    running: () => (child ? isRunning(child) : false),
    pid: () => (child && isRunning(child) ? child.pid : undefined),
    cleanup: async () => {
      if (child) await stopProcess(child, { graceMs: 5000 });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
