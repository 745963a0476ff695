// A deliberately dumb SIP peer for tests: it sends exact bytes and collects whatever
// comes back, so tests can throw hostile input at the agent and read its answers.
import dgram from 'node:dgram';
import net from 'node:net';

export interface Collected {
  /** Each message received, as text (latin1). */
  messages: string[];
}

/** Status code of a response, or undefined for a request/garbage. */
export function statusOf(message: string): number | undefined {
  const m = /^SIP\/2\.0 ([0-9]{3}) /.exec(message);
  return m ? Number(m[1]) : undefined;
}

export function headerOf(message: string, name: string): string | undefined {
  const head = message.split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'im');
  return re.exec(head)?.[1]?.trim();
}

/**
 * Sends datagrams from one socket and collects replies until `quietMs` passes with
 * nothing new after the last one (or `timeoutMs` in all).
 */
export async function udpExchange(
  port: number,
  datagrams: Buffer[],
  opts: { host?: string; quietMs?: number; timeoutMs?: number; expect?: number } = {},
): Promise<Collected> {
  const host = opts.host ?? '127.0.0.1';
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const messages: string[] = [];
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return new Promise((resolve) => {
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(overall);
      socket.close();
      resolve({ messages });
    };
    const overall = setTimeout(done, opts.timeoutMs ?? 2000);
    socket.on('message', (msg) => {
      messages.push(msg.toString('latin1'));
      if (opts.expect !== undefined && messages.length >= opts.expect) return done();
      clearTimeout(quiet);
      quiet = setTimeout(done, opts.quietMs ?? 150);
    });
    for (const d of datagrams) socket.send(d, port, host);
  });
}

/** Splits a TCP byte stream into SIP messages by Content-Length. */
export function splitStream(buffer: string): { messages: string[]; rest: string } {
  const messages: string[] = [];
  let rest = buffer;
  for (;;) {
    rest = rest.replace(/^(\r\n)+/, '');
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const cl = /^(?:content-length|l)\s*:\s*([0-9]+)/im.exec(head);
    const length = cl ? Number(cl[1]) : 0;
    if (rest.length < end + 4 + length) break;
    messages.push(rest.slice(0, end + 4 + length));
    rest = rest.slice(end + 4 + length);
  }
  return { messages, rest };
}

/**
 * Opens a TCP connection, writes the chunks, and collects messages until quiet, the
 * server closes, `expect` non-provisional messages arrived, or the timeout. `closed`
 * says whether the server closed on us.
 */
export async function tcpExchange(
  port: number,
  chunks: Buffer[],
  opts: { host?: string; quietMs?: number; timeoutMs?: number; expect?: number } = {},
): Promise<Collected & { closed: boolean; raw: string }> {
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    let raw = '';
    let closed = false;
    let finished = false;
    let quiet: NodeJS.Timeout | undefined;
    const socket = net.connect(port, host);
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(quiet);
      clearTimeout(overall);
      socket.destroy();
      resolve({ messages: splitStream(raw).messages, closed, raw });
    };
    const overall = setTimeout(done, opts.timeoutMs ?? 2000);
    socket.on('error', (err) => {
      if (!finished && raw === '' && !closed) {
        clearTimeout(overall);
        finished = true;
        reject(err);
      }
    });
    socket.on('data', (data) => {
      raw += data.toString('latin1');
      if (opts.expect !== undefined && splitStream(raw).messages.filter((m) => !/^SIP\/2\.0 1[0-9]{2} /.test(m)).length >= opts.expect) return done();
      clearTimeout(quiet);
      quiet = setTimeout(done, opts.quietMs ?? 150);
    });
    socket.on('end', () => {
      closed = true;
      done();
    });
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
      quiet = setTimeout(done, opts.timeoutMs ?? 2000);
    });
  });
}
