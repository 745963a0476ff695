// "SIP listening" means a real SIP answer: an OPTIONS over UDP to the agent's own
// listen address, retransmitted until a final response or the deadline. A bound port
// that never answers is not listening.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

export interface OptionsProbe {
  host: string;
  port: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** Retransmit this often (the agent may still be starting). */
  intervalMs?: number;
}

export interface OptionsAnswer {
  /** The final status code, or null when nothing answered. */
  status: number | null;
  reason: string;
  ms: number;
}

/** A wildcard listen address is reached on loopback of the same family. */
export function probeHost(listenHost: string): string {
  if (listenHost === '0.0.0.0') return '127.0.0.1';
  if (listenHost === '::' || listenHost === '[::]') return '::1';
  return listenHost.replace(/^\[|\]$/g, '');
}

export function buildOptions(host: string, port: number, localPort: number, callId: string, branch: string): string {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const local = host.includes(':') ? `[::1]:${localPort}` : `127.0.0.1:${localPort}`;
  return [
    `OPTIONS sip:${target} SIP/2.0`,
    `Via: SIP/2.0/UDP ${local};branch=z9hG4bK${branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:post-boot-verify@branchline.invalid>;tag=${branch.slice(0, 8)}`,
    `To: <sip:${target}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'User-Agent: branchline-post-boot-verify',
    'Accept: application/sdp',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

export function sendOptions(probe: OptionsProbe): Promise<OptionsAnswer> {
  const started = performance.now();
  const host = probeHost(probe.host);
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const callId = `${randomBytes(8).toString('hex')}@branchline-verify`;
  const branch = randomBytes(8).toString('hex');
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const finish = (answer: Omit<OptionsAnswer, 'ms'>): void => {
      clearInterval(timer);
      clearTimeout(deadline);
      socket.close();
      resolve({ ...answer, ms: Math.round(performance.now() - started) });
    };
    socket.on('message', (msg) => {
      const text = msg.toString('utf8');
      const status = /^SIP\/2\.0 ([0-9]{3}) ([^\r\n]*)/.exec(text);
      if (!status || !text.includes(callId)) return; // not ours
      const code = Number(status[1]);
      if (code < 200) return; // provisional: keep waiting for the final answer
      finish({ status: code, reason: status[2] ?? '' });
    });
    // ICMP port unreachable arrives as an error on a connected socket only; on an
    // unconnected one we simply hear nothing and retransmit until the deadline.
    socket.on('error', () => undefined);
    socket.bind(0, host.includes(':') ? '::1' : '127.0.0.1', () => {
      const local = socket.address().port;
      const message = Buffer.from(buildOptions(host, probe.port, local, callId, branch));
      const send = (): void => socket.send(message, probe.port, host);
      send();
      timer = setInterval(send, probe.intervalMs ?? 500);
      deadline = setTimeout(() => finish({ status: null, reason: `no answer from ${host}:${probe.port} within ${probe.timeoutMs} ms` }), probe.timeoutMs);
    });
  });
}
