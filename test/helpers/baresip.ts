// baresip 1.0 (Debian baresip-core) as a headless desk phone: one temp folder per
// phone with `config` and `accounts`, driven over ctrl_tcp with netstrings. The
// recipe and its traps are in /work/shared/design/TESTING.md.
//
// Behaviour observed here that tests rely on: it registers at start with the
// interval as a Contact parameter (`;expires=N`, no Expires header), refreshes at
// about 90 % of the interval on the same Call-ID, and on SIGTERM sends a REGISTER
// with expires=0 before it exits. It cannot answer a SHA-256 challenge: with any
// SHA-256 WWW-Authenticate in a 401 it gives up ("Register: Function not implemented").
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freeUdpTcpPort } from './ports.ts';
import { isRunning, killNow, stopProcess, track, type ExitStatus } from './proc.ts';

export interface BaresipAccount {
  user: string;
  password: string;
  /** The registrar, "host:port". */
  registrar: string;
  transport?: 'udp' | 'tcp';
  /** Registration interval in seconds (regint). */
  regint?: number;
  /**
   * The domain of the address-of-record. When given, the AOR is sip:user@domain and
   * requests go to the registrar as outbound proxy; otherwise the AOR names the
   * registrar's address (the TESTING.md recipe).
   */
  domain?: string;
}

export interface StartBaresipOptions {
  account: BaresipAccount;
  /** 8 kHz mono WAV to send in calls; a 440 Hz tone is made when absent. */
  audioFile?: string;
  /**
   * Record every call with the sndfile module into this folder: per call a WAV of
   * what was sent (`dump-…-enc.wav`) and of what was heard (`dump-…-dec.wav`).
   */
  recordDir?: string;
  readyTimeoutMs?: number;
  /** Load mwi.so and subscribe to the account's message-summary (MWI_NOTIFY events). */
  mwi?: boolean;
}

/** A message from ctrl_tcp: a command's response or an event. */
export type BaresipMessage = Record<string, unknown>;

export interface BaresipHandle {
  sipPort: number;
  ctrlPort: number;
  pid: number;
  /** The AOR baresip registers, e.g. sip:1001@127.0.0.1:5060. */
  aor: string;
  /** Sends a menu command (e.g. "reginfo", "dial") and resolves with its response. */
  command(command: string, params?: string, timeoutMs?: number): Promise<{ ok: boolean; data: string }>;
  events(): BaresipMessage[];
  waitForEvent(predicate: (event: BaresipMessage) => boolean, timeoutMs: number): Promise<BaresipMessage>;
  output(): string;
  running(): boolean;
  /** SIGTERM (baresip unregisters, then exits), SIGKILL after 5 s. */
  stop(): Promise<ExitStatus & { killed: boolean }>;
  kill(): void;
  /** Stops it if running and deletes its folder. */
  cleanup(): Promise<void>;
}

export class BaresipStartError extends Error {
  readonly code = 'EBARESIPSTART';
}

function makeTone(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', file, 'synth', '3', 'sine', '440'], (err) => (err ? reject(err) : resolve()));
  });
}

/** Splits netstrings ("LEN:payload,") off the front of a buffer. */
export function takeNetstrings(buffer: string): { payloads: string[]; rest: string } {
  const payloads: string[] = [];
  let rest = buffer;
  for (;;) {
    const colon = rest.indexOf(':');
    if (colon <= 0) break;
    const len = Number(rest.slice(0, colon));
    if (!Number.isInteger(len)) throw new Error(`bad netstring length ${JSON.stringify(rest.slice(0, colon))}`);
    // Lengths are bytes; the payload is JSON, ASCII in practice (baresip escapes).
    if (rest.length < colon + 1 + len + 1) break;
    payloads.push(rest.slice(colon + 1, colon + 1 + len));
    rest = rest.slice(colon + 1 + len + 1);
  }
  return { payloads, rest };
}

function connectWithRetry(port: number, deadline: number, child: ReturnType<typeof spawn>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(socket));
      socket.once('error', () => {
        socket.destroy();
        if (!isRunning(child)) reject(new BaresipStartError('baresip exited before ctrl_tcp listened'));
        else if (Date.now() > deadline) reject(new BaresipStartError(`ctrl_tcp not listening on ${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/**
 * Starts a phone; on a port clash (another process bound one of its ports between
 * our check and baresip's bind) it starts again on fresh ports, up to 3 times.
 */
export async function startBaresip(opts: StartBaresipOptions): Promise<BaresipHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startBaresipOnce(opts);
    } catch (err) {
      const clash = err instanceof BaresipStartError && err.message.includes('Address already in use');
      if (!clash || attempt >= 3) throw err;
    }
  }
}

async function startBaresipOnce(opts: StartBaresipOptions): Promise<BaresipHandle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-baresip-'));
  const sipPort = await freeUdpTcpPort();
  const ctrlPort = await freeUdpTcpPort();
  const rtpPort = await freeUdpTcpPort();
  const audioFile = opts.audioFile ?? path.join(dir, 'tone-440-8k.wav');
  if (!opts.audioFile) await makeTone(audioFile);

  const config = [
    `sip_listen      127.0.0.1:${sipPort}`,
    // Without it baresip advertises the machine's external address.
    'net_interface   127.0.0.1',
    `audio_source    aufile,${audioFile}`,
    'audio_player    aubridge,nil',
    'module_path     /usr/lib/baresip/modules',
    'module g711.so',
    'module aufile.so',
    'module aubridge.so',
    'module_app account.so',
    // menu provides the commands; stdio.so must not be loaded headless.
    'module_app menu.so',
    'module_app ctrl_tcp.so',
    `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`,
    `rtp_ports       ${rtpPort}-${rtpPort + 10}`,
    ...(opts.recordDir === undefined ? [] : ['module sndfile.so', `snd_path        ${opts.recordDir}`]),
    // Only where the server answers SUBSCRIBE: against one that refuses it, mwi.so retries in a tight loop.
    ...(opts.mwi ? ['module_app mwi.so'] : []),
    '',
  ].join('\n');
  const a = opts.account;
  const transport = a.transport ?? 'udp';
  const aor = a.domain ? `sip:${a.user}@${a.domain}` : `sip:${a.user}@${a.registrar}`;
  const params = [`auth_pass=${a.password}`, 'answermode=manual', `regint=${a.regint ?? 3600}`, ...(opts.mwi ? ['mwi=yes'] : [])];
  if (a.domain) params.push(`outbound="sip:${a.registrar};transport=${transport}"`);
  const accountLine = `<${aor}${!a.domain && transport === 'tcp' ? ';transport=tcp' : ''}>;${params.join(';')}`;
  await writeFile(path.join(dir, 'config'), config);
  // No account at start: baresip would register before ctrl_tcp is connected and
  // its events would be lost. The account is added over ctrl_tcp (uanew) below.
  await writeFile(path.join(dir, 'accounts'), '');

  const child = spawn('baresip', ['-f', dir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
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

  let socket: net.Socket;
  try {
    socket = await connectWithRetry(ctrlPort, Date.now() + (opts.readyTimeoutMs ?? 10_000), child);
  } catch (err) {
    await cleanup();
    throw new BaresipStartError(`${(err as Error).message}\n--- baresip output ---\n${output}`);
  }

  const messages: BaresipMessage[] = [];
  const listeners = new Set<(m: BaresipMessage) => void>();
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    const { payloads, rest } = takeNetstrings(buffer + chunk);
    buffer = rest;
    for (const p of payloads) {
      let m: BaresipMessage;
      try {
        m = JSON.parse(p) as BaresipMessage;
      } catch {
        m = { raw: p };
      }
      messages.push(m);
      for (const l of [...listeners]) l(m);
    }
  });
  socket.on('error', () => undefined); // baresip closing the socket at exit is expected.
  child.once('exit', () => socket.destroy());

  function waitFor(predicate: (m: BaresipMessage) => boolean, timeoutMs: number, what: string): Promise<BaresipMessage> {
    const seen = messages.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(new Error(`baresip: no ${what} within ${timeoutMs} ms; messages: ${JSON.stringify(messages.slice(-10))}\n--- output ---\n${output.slice(-3000)}`));
      }, timeoutMs);
      const listener = (m: BaresipMessage): void => {
        if (!predicate(m)) return;
        clearTimeout(timer);
        listeners.delete(listener);
        resolve(m);
      };
      listeners.add(listener);
    });
  }

  let tokenCounter = 0;
  const command = async (cmd: string, paramsText = '', timeoutMs = 5000): Promise<{ ok: boolean; data: string }> => {
    const token = `t${++tokenCounter}`;
    const body = JSON.stringify({ command: cmd, params: paramsText, token });
    socket.write(`${Buffer.byteLength(body)}:${body},`);
    const res = await waitFor((m) => m['response'] === true && m['token'] === token, timeoutMs, `response to ${cmd}`);
    return { ok: res['ok'] === true, data: typeof res['data'] === 'string' ? res['data'] : '' };
  };

  const created = await command('uanew', accountLine).catch(async (err: unknown) => {
    await cleanup();
    throw new BaresipStartError(`uanew failed: ${(err as Error).message}`);
  });
  if (!created.ok) {
    await cleanup();
    throw new BaresipStartError(`uanew refused ${accountLine}: ${created.data}`);
  }

  return {
    sipPort,
    ctrlPort,
    pid: child.pid ?? -1,
    aor,
    command,
    events: () => messages.filter((m) => m['event'] === true),
    waitForEvent: (predicate, timeoutMs) => waitFor((m) => m['event'] === true && predicate(m), timeoutMs, 'matching event'),
    output: () => output,
    running: () => isRunning(child),
    stop: async () => {
      const status = await stopProcess(child, { signal: 'SIGTERM', graceMs: 5000 });
      socket.destroy();
      return status;
    },
    kill: () => killNow(child),
    cleanup: async () => {
      socket.destroy();
      await cleanup();
    },
  };
}

