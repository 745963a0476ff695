// The SIP stack's transports over real loopback sockets: UDP (rport/received,
// response routing, size limit, keep-alives, hostile Via params), TCP (framing,
// CRLF ping/pong, pipelining, limits, idle and connection caps), binding errors
// and IPv6. Each test sends the bytes a phone (or an attacker) would.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import vm from 'node:vm';
import v8 from 'node:v8';
import pino from 'pino';
import type { Logger } from 'pino';
import { SipStack } from '../../agent/sip/stack.ts';
import type { IncomingRequest, SipStackOptions } from '../../agent/sip/stack.ts';

// The memory test forces collections; the flag must be set before gc is looked up.
v8.setFlagsFromString('--expose-gc');

const silent = pino({ level: 'silent' });
const checks = { supportedExtensions: new Set(['path', 'outbound']), acceptedContentTypes: new Set(['application/sdp', 'text/plain']) };

function options(over: Partial<SipStackOptions> = {}): SipStackOptions {
  return { udp: { host: '127.0.0.1', port: 0 }, tcp: { host: '127.0.0.1', port: 0 }, maxMessageBytes: 65535, checks, logger: silent, ...over };
}

/** A stack whose TU answers every request 200 OK (with the body length in a header) and records it. */
async function startEchoStack(over: Partial<SipStackOptions> = {}): Promise<{ stack: SipStack; seen: IncomingRequest[] }> {
  const stack = new SipStack(options(over));
  const seen: IncomingRequest[] = [];
  stack.onRequest((req) => {
    seen.push(req);
    req.respond(200, 'OK', { toTag: 'echo', headers: { 'X-Body-Length': String(req.request.content.length) } });
  });
  await stack.start();
  return { stack, seen };
}

let seq = 0;
function options_(opts: { transport?: 'UDP' | 'TCP'; sentBy: string; viaParams?: string; body?: string; callId?: string; extra?: string }): Buffer {
  const body = opts.body ?? '';
  const text =
    'OPTIONS sip:branchline@127.0.0.1 SIP/2.0\r\n' +
    `Via: SIP/2.0/${opts.transport ?? 'UDP'} ${opts.sentBy};branch=z9hG4bK-t${++seq}${opts.viaParams ?? ''}\r\n` +
    'Max-Forwards: 70\r\n' +
    'From: <sip:1001@127.0.0.1>;tag=from1\r\n' +
    'To: <sip:branchline@127.0.0.1>\r\n' +
    `Call-ID: ${opts.callId ?? `call-${seq}`}\r\n` +
    'CSeq: 1 OPTIONS\r\n' +
    (opts.extra ?? '') +
    (body !== '' ? 'Content-Type: text/plain\r\n' : '') +
    `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n` +
    body;
  return Buffer.from(text, 'latin1');
}

function header(message: string, name: string): string | undefined {
  const head = message.split('\r\n\r\n')[0] ?? '';
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).trim().toLowerCase() === name.toLowerCase()) return line.slice(colon + 1).trim();
  }
  return undefined;
}

function statusOf(message: string): number {
  return Number(/^SIP\/2\.0 (\d{3}) /.exec(message)?.[1] ?? 0);
}

/** Resolves on the next wake-up pushed into `waiters`, or after ms; leaves no timer behind. */
function wakeOrTimeout(waiters: Array<() => void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

class UdpClient {
  readonly socket: dgram.Socket;
  readonly received: Array<{ text: string; at: number }> = [];
  private waiters: Array<() => void> = [];

  constructor(type: 'udp4' | 'udp6' = 'udp4') {
    this.socket = dgram.createSocket(type);
    this.socket.on('message', (m) => {
      this.received.push({ text: m.toString('latin1'), at: performance.now() });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async bind(host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve) => this.socket.bind(0, host, resolve));
    return this.socket.address().port;
  }

  send(bytes: Buffer, port: number, host = '127.0.0.1'): void {
    this.socket.send(bytes, port, host);
  }

  /** Waits until `count` messages have arrived (or fails after timeoutMs). */
  async waitFor(count: number, timeoutMs = 2000): Promise<string[]> {
    const deadline = performance.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`expected ${count} messages, got ${this.received.length}`);
      await wakeOrTimeout(this.waiters, left);
    }
    return this.received.map((r) => r.text);
  }

  close(): void {
    this.socket.close();
  }
}

/** A raw TCP peer: writes bytes, collects the stream, splits it into SIP messages. */
class TcpClient {
  readonly socket: net.Socket;
  raw = Buffer.alloc(0);
  closed = false;
  private waiters: Array<() => void> = [];

  constructor(port: number, host = '127.0.0.1') {
    this.socket = net.connect(port, host);
    this.socket.on('data', (d: Buffer) => {
      this.raw = Buffer.concat([this.raw, d]);
      this.wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on('error', () => {}); // the server closing on us is what some tests expect
  }

  connected(): Promise<void> {
    if (!this.socket.connecting) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }

  write(bytes: Buffer | string): Promise<void> {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  messages(): string[] {
    const out: string[] = [];
    let rest = this.raw.toString('latin1');
    for (;;) {
      rest = rest.replace(/^(\r\n)+/, '');
      const end = rest.indexOf('\r\n\r\n');
      if (end < 0) break;
      const length = Number(/^(?:content-length|l)\s*:\s*(\d+)/im.exec(rest.slice(0, end))?.[1] ?? 0);
      if (rest.length < end + 4 + length) break;
      out.push(rest.slice(0, end + 4 + length));
      rest = rest.slice(end + 4 + length);
    }
    return out;
  }

  async until(predicate: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await wakeOrTimeout(this.waiters, left);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

function collectingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('SIP over UDP', () => {
  let stack: SipStack;
  let seen: IncomingRequest[];
  let port: number;
  before(async () => {
    ({ stack, seen } = await startEchoStack({ tcp: undefined }));
    port = stack.addresses.udp?.port ?? 0;
  });
  after(() => stack.stop());

  it('answers at the source port when the client asked for rport, recording received and rport', async () => {
    const client = new UdpClient();
    const clientPort = await client.bind();
    try {
      // sent-by names a port nobody listens on: only rport gets the answer back to us
      client.send(options_({ sentBy: '192.0.2.7:5999', viaParams: ';rport' }), port);
      const [reply] = await client.waitFor(1);
      assert.equal(statusOf(reply ?? ''), 200);
      assert.match(header(reply ?? '', 'Via') ?? '', new RegExp(`^SIP/2\\.0/UDP 192\\.0\\.2\\.7:5999;branch=z9hG4bK-t\\d+;rport=${clientPort};received=127\\.0\\.0\\.1$`));
      assert.equal(seen.at(-1)?.source.port, clientPort);
      assert.equal(seen.at(-1)?.source.transport, 'udp');
    } finally {
      client.close();
    }
  });

  it('without rport answers the sent-by port at the source address, adding no received when the host matches', async () => {
    const sender = new UdpClient();
    const listener = new UdpClient();
    await sender.bind();
    const listenPort = await listener.bind();
    try {
      sender.send(options_({ sentBy: `127.0.0.1:${listenPort}` }), port);
      const [reply] = await listener.waitFor(1);
      assert.match(header(reply ?? '', 'Via') ?? '', new RegExp(`^SIP/2\\.0/UDP 127\\.0\\.0\\.1:${listenPort};branch=z9hG4bK-t\\d+$`));
      await sleep(50);
      assert.equal(sender.received.length, 0, 'nothing goes to the source port without rport');
    } finally {
      sender.close();
      listener.close();
    }
  });

  it('survives Via parameters named __proto__, constructor and prototype, and still answers the next OPTIONS', async () => {
    const client = new UdpClient();
    await client.bind();
    try {
      for (const params of [';__proto__', ';__proto__=1', ';constructor;prototype=x', ';hasOwnProperty=2;toString']) {
        client.send(options_({ sentBy: '127.0.0.1:1', viaParams: params + ';rport' }), port);
      }
      await client.waitFor(4);
      client.send(options_({ sentBy: '127.0.0.1:1', viaParams: ';rport', callId: 'after-proto' }), port);
      const replies = await client.waitFor(5);
      assert.equal(header(replies[4] ?? '', 'Call-ID'), 'after-proto');
      assert.equal(statusOf(replies[4] ?? ''), 200);
      assert.match(header(replies[0] ?? '', 'Via') ?? '', /;branch=z9hG4bK-t\d+;__proto__;rport=\d+;received=127\.0\.0\.1$/);
    } finally {
      client.close();
    }
  });

  it('drops datagrams over maxMessageBytes and ignores CRLF keep-alives without a word', async () => {
    const small = await startEchoStack({ tcp: undefined, maxMessageBytes: 1000 });
    const smallPort = small.stack.addresses.udp?.port ?? 0;
    const client = new UdpClient();
    await client.bind();
    try {
      client.send(options_({ sentBy: '127.0.0.1:1', viaParams: ';rport', body: 'x'.repeat(1200) }), smallPort);
      client.send(Buffer.from('\r\n\r\n'), smallPort);
      client.send(Buffer.from('\r\n'), smallPort);
      client.send(options_({ sentBy: '127.0.0.1:1', viaParams: ';rport', callId: 'fits', body: 'y'.repeat(100) }), smallPort);
      const [reply] = await client.waitFor(1);
      await sleep(50);
      assert.equal(client.received.length, 1, 'only the message that fits is answered');
      assert.equal(header(reply ?? '', 'Call-ID'), 'fits');
      assert.equal(small.stack.stats().dropped, 1, 'the oversized datagram counts as dropped; keep-alives do not');
      assert.equal(small.seen.length, 1);
    } finally {
      client.close();
      await small.stack.stop();
    }
  });

  it('answers an invalid request that still names its Via with the parser\'s 400, statelessly', async () => {
    const client = new UdpClient();
    await client.bind();
    try {
      const bad = options_({ sentBy: '127.0.0.1:1', viaParams: ';rport', extra: 'Max-Forwards: many\r\n', callId: 'bad-mf' });
      client.send(bad, port);
      const [reply] = await client.waitFor(1);
      assert.equal(statusOf(reply ?? ''), 400);
      assert.equal(header(reply ?? '', 'Call-ID'), 'bad-mf');
      assert.ok(!seen.some((r) => r.request.headers['call-id'] === 'bad-mf'), 'the TU never sees it');
    } finally {
      client.close();
    }
  });

  it('rate-limits the log of dropped garbage while counting every datagram', async () => {
    const { logger, lines } = collectingLogger();
    const noisy = new SipStack(options({ tcp: undefined, logger }));
    await noisy.start();
    const client = new UdpClient();
    await client.bind();
    try {
      const noisyPort = noisy.addresses.udp?.port ?? 0;
      for (let i = 0; i < 300; i++) client.send(Buffer.from(`garbage ${i} \u0000\u0001`), noisyPort);
      const deadline = performance.now() + 2000;
      while (noisy.stats().dropped < 300 && performance.now() < deadline) await sleep(10);
      assert.equal(noisy.stats().dropped, 300);
      const garbageLines = lines.filter((l) => l['msg'] === 'dropped an invalid SIP message');
      assert.ok(garbageLines.length >= 1 && garbageLines.length <= 20, `${garbageLines.length} log lines for 300 garbage datagrams`);
    } finally {
      client.close();
      await noisy.stop();
    }
  });

  it('logs, and survives, a response it cannot send (Via port 0, no rport)', async () => {
    const client = new UdpClient();
    await client.bind();
    try {
      client.send(options_({ sentBy: '127.0.0.1:0' }), port);
      await sleep(50);
      client.send(options_({ sentBy: '127.0.0.1:1', viaParams: ';rport', callId: 'still-alive' }), port);
      const [reply] = await client.waitFor(1);
      assert.equal(header(reply ?? '', 'Call-ID'), 'still-alive');
    } finally {
      client.close();
    }
  });
});

describe('SIP over TCP', () => {
  let stack: SipStack;
  let seen: IncomingRequest[];
  let port: number;
  before(async () => {
    ({ stack, seen } = await startEchoStack({ udp: undefined }));
    port = stack.addresses.tcp?.port ?? 0;
  });
  after(() => stack.stop());

  it('answers on the connection the request came on, with received set', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      await client.write(options_({ transport: 'TCP', sentBy: 'phone.invalid:5060', callId: 'tcp-1' }));
      await client.until(() => client.messages().length === 1);
      const reply = client.messages()[0] ?? '';
      assert.equal(statusOf(reply), 200);
      assert.match(header(reply, 'Via') ?? '', /^SIP\/2\.0\/TCP phone\.invalid:5060;branch=z9hG4bK-t\d+;received=127\.0\.0\.1$/);
      const source = seen.at(-1)?.source;
      assert.equal(source?.transport, 'tcp');
      assert.equal(source?.port, client.socket.localPort);
      assert.equal(typeof source?.connectionId, 'number');
    } finally {
      client.destroy();
    }
  });

  it('answers a CRLFCRLF ping with a CRLF pong', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      await client.write('\r\n\r\n');
      await client.until(() => client.raw.length >= 2);
      await sleep(30);
      assert.equal(client.raw.toString('latin1'), '\r\n');
    } finally {
      client.destroy();
    }
  });

  it('answers many messages pipelined in one write, in order', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      const batch = Array.from({ length: 50 }, (_, i) => options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: `pipe-${i}` }));
      await client.write(Buffer.concat(batch));
      await client.until(() => client.messages().length === 50, 3000, '50 answers');
      assert.deepEqual(
        client.messages().map((m) => header(m, 'Call-ID')),
        batch.map((_, i) => `pipe-${i}`),
      );
    } finally {
      client.destroy();
    }
  });

  it('reassembles a message written a few bytes at a time', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      const msg = options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'trickle', body: 'hello over many segments' });
      client.socket.setNoDelay(true);
      for (let i = 0; i < msg.length; i += 7) {
        await client.write(msg.subarray(i, i + 7));
        if (i % 70 === 0) await sleep(1);
      }
      await client.until(() => client.messages().length === 1);
      assert.equal(header(client.messages()[0] ?? '', 'X-Body-Length'), '24');
    } finally {
      client.destroy();
    }
  });

  it('accepts a valid 62 KB message (body included) when maxMessageBytes allows it', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      const msg = options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'big', body: 'b'.repeat(62 * 1024) });
      assert.ok(msg.length > 62 * 1024 && msg.length < 65535);
      await client.write(msg);
      await client.until(() => client.messages().length === 1, 3000);
      assert.equal(statusOf(client.messages()[0] ?? ''), 200);
      assert.equal(header(client.messages()[0] ?? '', 'X-Body-Length'), String(62 * 1024));
      assert.equal(client.closed, false);
    } finally {
      client.destroy();
    }
  });

  it('answers Content-Length: abc with 400, closes the connection, keeps no growing buffer, and serves the next connection', async () => {
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage();
    const client = new TcpClient(port);
    try {
      await client.connected();
      await client.write(options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'cl-abc' }).toString('latin1').replace(/Content-Length: 0/, 'Content-Length: abc'));
      // then keep pushing junk, as an attacker would, while the server is closing
      const junk = Buffer.alloc(64 * 1024, 'j');
      for (let i = 0; i < 32 && !client.closed; i++) await client.write(junk);
      await client.until(() => client.closed, 3000, 'the server to close');
      const replies = client.messages();
      assert.equal(replies.length, 1);
      assert.equal(statusOf(replies[0] ?? ''), 400);
      assert.equal(header(replies[0] ?? '', 'Call-ID'), 'cl-abc');
    } finally {
      client.destroy();
    }
    // The client's own junk (2 MB) may still sit in its socket's write queue for a
    // few ticks after destroy(); only what outlives that could be the server's.
    let grown = Number.POSITIVE_INFINITY;
    for (let attempt = 0; attempt < 20 && grown >= 1024 * 1024; attempt++) {
      await new Promise((r) => setTimeout(r, 25));
      gc();
      grown = process.memoryUsage().arrayBuffers - before.arrayBuffers;
    }
    assert.ok(grown < 1024 * 1024, `external buffers grew by ${grown} bytes`);
    const next = new TcpClient(port);
    try {
      await next.connected();
      await next.write(options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'after-abc' }));
      await next.until(() => next.messages().length === 1);
      assert.equal(header(next.messages()[0] ?? '', 'Call-ID'), 'after-abc');
    } finally {
      next.destroy();
    }
  });

  it('answers a Content-Length past the limit with 413 and closes', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      await client.write(options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'too-big' }).toString('latin1').replace(/Content-Length: 0/, 'Content-Length: 70000'));
      await client.until(() => client.closed, 3000, 'the server to close');
      assert.equal(statusOf(client.messages()[0] ?? ''), 413);
    } finally {
      client.destroy();
    }
  });

  it('closes, without an answer, a header block that never ends', async () => {
    const client = new TcpClient(port);
    try {
      await client.connected();
      await client.write('OPTIONS sip:a@b SIP/2.0\r\n');
      const line = Buffer.from('X-Filler: ' + 'f'.repeat(1000) + '\r\n');
      for (let i = 0; i < 100 && !client.closed; i++) await client.write(line);
      await client.until(() => client.closed, 3000, 'the server to close');
      assert.equal(client.raw.length, 0);
    } finally {
      client.destroy();
    }
  });

  it('closes idle connections', async () => {
    const idle = await startEchoStack({ udp: undefined, tcpIdleTimeoutMs: 150 });
    const client = new TcpClient(idle.stack.addresses.tcp?.port ?? 0);
    try {
      await client.connected();
      const opened = performance.now();
      await client.until(() => client.closed, 2000, 'the idle close');
      const after = performance.now() - opened;
      assert.ok(after >= 100 && after < 1000, `closed after ${after} ms`);
      const deadline = performance.now() + 1000;
      while (idle.stack.stats().tcpConnections > 0 && performance.now() < deadline) await sleep(5);
      assert.equal(idle.stack.stats().tcpConnections, 0);
    } finally {
      client.destroy();
      await idle.stack.stop();
    }
  });

  it('refuses connections past maxTcpConnections and accepts again once one closes', async () => {
    const capped = await startEchoStack({ udp: undefined, maxTcpConnections: 2 });
    const cappedPort = capped.stack.addresses.tcp?.port ?? 0;
    const a = new TcpClient(cappedPort);
    const b = new TcpClient(cappedPort);
    const c = new TcpClient(cappedPort);
    let d: TcpClient | undefined;
    try {
      await Promise.all([a.connected(), b.connected(), c.connected()]);
      await c.until(() => c.closed, 2000, 'the third connection to be refused');
      assert.equal(capped.stack.stats().tcpConnections, 2);
      a.destroy();
      await a.until(() => a.closed);
      const deadline = performance.now() + 1000;
      while (capped.stack.stats().tcpConnections > 1 && performance.now() < deadline) await sleep(5);
      const client = new TcpClient(cappedPort);
      d = client;
      await client.connected();
      await client.write(options_({ transport: 'TCP', sentBy: '127.0.0.1:5070', callId: 'after-cap' }));
      await client.until(() => client.messages().length === 1);
      assert.equal(header(client.messages()[0] ?? '', 'Call-ID'), 'after-cap');
    } finally {
      for (const x of [a, b, c, d]) x?.destroy();
      await capped.stack.stop();
    }
  });
});

describe('binding', () => {
  it('rejects start() with EBIND naming the port when UDP is taken, and leaves nothing open', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((r) => holder.bind(0, '127.0.0.1', r));
    const taken = holder.address().port;
    const stack = new SipStack(options({ udp: { host: '127.0.0.1', port: taken }, tcp: undefined }));
    try {
      await assert.rejects(stack.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'EBIND');
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${taken}`));
        assert.match(err.message, /EADDRINUSE/);
        return true;
      });
    } finally {
      holder.close();
      await stack.stop();
    }
  });

  it('rejects start() with EBIND when the TCP port is taken, closing the UDP socket it had bound', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const address = holder.address();
    const taken = typeof address === 'object' && address !== null ? address.port : 0;
    const stack = new SipStack(options({ udp: { host: '127.0.0.1', port: taken }, tcp: { host: '127.0.0.1', port: taken } }));
    try {
      await assert.rejects(stack.start(), { code: 'EBIND', message: new RegExp(`TCP to 127\\.0\\.0\\.1:${taken}`) });
      // the UDP port it bound first is free again
      const probe = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.bind(taken, '127.0.0.1', resolve);
      });
      probe.close();
    } finally {
      holder.close();
      await stack.stop();
    }
  });
});

describe('IPv6 loopback', () => {
  it('answers OPTIONS over UDP and TCP on ::1', async () => {
    const { stack, seen } = await startEchoStack({ udp: { host: '::1', port: 0 }, tcp: { host: '::1', port: 0 } });
    const udp = new UdpClient('udp6');
    await udp.bind('::1');
    const tcp = new TcpClient(stack.addresses.tcp?.port ?? 0, '::1');
    try {
      assert.equal(stack.addresses.udp?.address, '::1');
      udp.send(options_({ sentBy: '[::1]:5999', viaParams: ';rport', callId: 'v6-udp' }), stack.addresses.udp?.port ?? 0, '::1');
      const [reply] = await udp.waitFor(1);
      assert.equal(statusOf(reply ?? ''), 200);
      assert.match(header(reply ?? '', 'Via') ?? '', new RegExp(`^SIP/2\\.0/UDP \\[::1\\]:5999;branch=z9hG4bK-t\\d+;rport=${udp.socket.address().port};received=::1$`));
      assert.equal(seen.at(-1)?.source.address, '::1');

      await tcp.connected();
      await tcp.write(options_({ transport: 'TCP', sentBy: '[::1]:5070', callId: 'v6-tcp' }));
      await tcp.until(() => tcp.messages().length === 1);
      assert.equal(header(tcp.messages()[0] ?? '', 'Call-ID'), 'v6-tcp');
    } finally {
      udp.close();
      tcp.destroy();
      await stack.stop();
    }
  });
});
