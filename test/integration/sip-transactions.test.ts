// RFC 3261 17 transactions, driven over real loopback sockets: the peer in each
// test is a raw UDP/TCP socket that sends exact bytes and timestamps what comes
// back. Timers are shortened (T1 = 50 ms, T2 = 200 ms unless said) so that
// retransmission schedules can be observed in a few seconds.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import pino from 'pino';
import { newBranch, newTag } from '../../agent/sip/branch.ts';
import { SipStack } from '../../agent/sip/stack.ts';
import type { IncomingRequest, SipStackOptions } from '../../agent/sip/stack.ts';
import { CompletedResponseStore } from '../../agent/sip/transactions/completed-store.ts';
import type { Endpoint, NameAddr, SipHeaders, SipRequest } from '../../agent/sip/types.ts';

v8.setFlagsFromString('--expose-gc'); // for the memory measurement; set before gc is looked up

const silent = pino({ level: 'silent' });
const checks = { supportedExtensions: new Set(['path', 'outbound']), acceptedContentTypes: new Set(['application/sdp']) };

function options(over: Partial<SipStackOptions> = {}): SipStackOptions {
  return { udp: { host: '127.0.0.1', port: 0 }, maxMessageBytes: 65535, checks, logger: silent, timers: { t1: 50, t2: 200, t4: 250 }, ...over };
}

// --- raw peers -----------------------------------------------------------------

interface Arrival {
  text: string;
  at: number;
}

function wakeOrTimeout(waiters: Array<() => void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

class UdpPeer {
  readonly socket = dgram.createSocket('udp4');
  readonly received: Arrival[] = [];
  private waiters: Array<() => void> = [];

  constructor() {
    this.socket.on('message', (m) => {
      this.received.push({ text: m.toString('latin1'), at: performance.now() });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async bind(): Promise<number> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return this.port;
  }

  get port(): number {
    return this.socket.address().port;
  }

  get endpoint(): Endpoint {
    return { transport: 'udp', address: '127.0.0.1', port: this.port };
  }

  send(text: string, port: number): void {
    this.socket.send(Buffer.from(text, 'latin1'), port, '127.0.0.1');
  }

  matching(predicate: (text: string) => boolean): Arrival[] {
    return this.received.filter((a) => predicate(a.text));
  }

  async waitFor(predicate: (text: string) => boolean, count = 1, timeoutMs = 3000): Promise<Arrival[]> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.matching(predicate);
      if (found.length >= count) return found;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`expected ${count} matching messages, got ${found.length}: ${JSON.stringify(this.received.map((r) => firstLine(r.text)))}`);
      await wakeOrTimeout(this.waiters, left);
    }
  }

  close(): void {
    this.socket.close();
  }
}

function firstLine(text: string): string {
  return text.slice(0, text.indexOf('\r\n'));
}

function header(message: string, name: string): string | undefined {
  return headers(message, name)[0];
}

function headers(message: string, name: string): string[] {
  const head = message.split('\r\n\r\n')[0] ?? '';
  const out: string[] = [];
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).trim().toLowerCase() === name.toLowerCase()) out.push(line.slice(colon + 1).trim());
  }
  return out;
}

const isStatus = (status: number) => (text: string) => text.startsWith(`SIP/2.0 ${status} `);
const isMethod = (method: string) => (text: string) => text.startsWith(`${method} `);

interface RawRequestOptions {
  method: string;
  branch?: string;
  callId?: string;
  cseq?: number;
  cseqMethod?: string;
  toTag?: string;
  extra?: string;
  body?: string;
  peerPort: number;
}

/** A request as a phone would send it, from 127.0.0.1:peerPort with rport. */
function rawRequest(o: RawRequestOptions): string {
  const body = o.body ?? '';
  return (
    `${o.method} sip:1001@127.0.0.1 SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP 127.0.0.1:${o.peerPort};branch=${o.branch ?? newBranch()};rport\r\n` +
    'Max-Forwards: 70\r\n' +
    'From: <sip:1002@127.0.0.1>;tag=caller\r\n' +
    `To: <sip:1001@127.0.0.1>${o.toTag !== undefined ? `;tag=${o.toTag}` : ''}\r\n` +
    `Call-ID: ${o.callId ?? newTag()}\r\n` +
    `CSeq: ${o.cseq ?? 1} ${o.cseqMethod ?? o.method}\r\n` +
    (o.method === 'REGISTER' ? `Contact: <sip:1002@127.0.0.1:${o.peerPort}>\r\n` : '') +
    (o.extra ?? '') +
    `Content-Length: ${body.length}\r\n\r\n` +
    body
  );
}

/** A response to a request the stack sent: Via, From, To, Call-ID and CSeq copied verbatim. */
function rawResponse(request: string, status: number, reason: string, toTag?: string, extra = ''): string {
  const copied = ['Via', 'From', 'To', 'Call-ID', 'CSeq'].flatMap((name) =>
    headers(request, name).map((v) => `${name}: ${name === 'To' && toTag !== undefined && !/;tag=/.test(v) ? `${v};tag=${toTag}` : v}`),
  );
  return `SIP/2.0 ${status} ${reason}\r\n${copied.join('\r\n')}\r\n${extra}Content-Length: 0\r\n\r\n`;
}

function params(entries: Record<string, string | null> = {}): Record<string, string | null> {
  return Object.assign(Object.create(null) as Record<string, string | null>, entries);
}

function nameAddr(uri: string, p: Record<string, string | null> = {}): NameAddr {
  return { uri, params: params(p) };
}

/** A request for stack.request(): no Via, so the stack fills its own. */
function outgoing(method: string, uri: string, extra: Partial<SipHeaders> = {}): SipRequest {
  const headers: SipHeaders = {
    via: [],
    to: nameAddr(uri),
    from: nameAddr('sip:branchline@127.0.0.1', { tag: newTag() }),
    'call-id': newTag(),
    cseq: { seq: 1, method },
    ...extra,
  };
  return { kind: 'request', method, uri, version: 'SIP/2.0', headers, content: '' };
}

function gaps(arrivals: Arrival[]): number[] {
  return arrivals.slice(1).map((a, i) => Math.round(a.at - (arrivals[i]?.at ?? 0)));
}

function near(actual: number, expected: number, tolerance: number): boolean {
  return Math.abs(actual - expected) <= tolerance;
}

/**
 * Each gap is its timer interval plus however late the event loop ran the timer:
 * never much early, sometimes late on a busy two-core machine. Doubling or a missing
 * T2 cap shows as a factor of two, far outside these bounds.
 */
function assertGaps(actual: number[], expected: number[]): void {
  const ok = expected.every((want, i) => {
    const got = actual[i];
    return got !== undefined && got >= want - 15 && got <= want + 40 + want / 4;
  });
  assert.ok(ok, `gaps ${actual.join(',')} ms, expected about ${expected.join(',')}`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

// --- server transactions --------------------------------------------------------

describe('server transactions', () => {
  let stack: SipStack;
  let port: number;
  let peer: UdpPeer;
  const seen: IncomingRequest[] = [];
  let behaviour: (req: IncomingRequest) => void | Promise<void> = (req) => req.respond(200, 'OK');
  const cancelled: Array<{ invite: IncomingRequest; cancel: SipRequest }> = [];

  before(async () => {
    stack = new SipStack(options());
    stack.onRequest((req) => {
      seen.push(req);
      return behaviour(req);
    });
    stack.onCancel((invite, cancel) => cancelled.push({ invite, cancel }));
    await stack.start();
    port = stack.addresses.udp?.port ?? 0;
    peer = new UdpPeer();
    await peer.bind();
  });
  after(async () => {
    peer.close();
    await stack.stop();
  });

  function seenCallId(callId: string): IncomingRequest[] {
    return seen.filter((r) => r.request.headers['call-id'] === callId);
  }

  it('answers a retransmitted REGISTER from the transaction with identical bytes, without the TU', async () => {
    behaviour = (req) => req.respond(200, 'OK', { toTag: 'reg', headers: { Contact: `<sip:1002@127.0.0.1:${peer.port}>;expires=300` } });
    const register = rawRequest({ method: 'REGISTER', callId: 'reg-retx', peerPort: peer.port });
    peer.send(register, port);
    const [first] = await peer.waitFor((t) => header(t, 'Call-ID') === 'reg-retx');
    const absorbedBefore = stack.stats().retransmissionsAbsorbed;
    peer.send(register, port);
    peer.send(register, port);
    const copies = await peer.waitFor((t) => header(t, 'Call-ID') === 'reg-retx', 3);
    assert.deepEqual(
      copies.map((c) => c.text),
      [first?.text, first?.text, first?.text],
    );
    assert.equal(seenCallId('reg-retx').length, 1, 'the TU saw the REGISTER once');
    assert.equal(stack.stats().retransmissionsAbsorbed - absorbedBefore, 2);
  });

  it('absorbs a retransmission while the TU works, resends the last provisional, then the final', async () => {
    let finish: (() => void) | undefined;
    behaviour = (req) => {
      finish = () => req.respond(200, 'OK', { toTag: 'slow' });
    };
    const message = rawRequest({ method: 'MESSAGE', callId: 'slow-tu', peerPort: peer.port });
    peer.send(message, port);
    await sleep(40);
    peer.send(message, port); // Trying: absorbed, nothing sent
    await sleep(40);
    assert.equal(peer.matching((t) => header(t, 'Call-ID') === 'slow-tu').length, 0);
    seenCallId('slow-tu')[0]?.respond(180, 'Working');
    await peer.waitFor((t) => header(t, 'Call-ID') === 'slow-tu');
    peer.send(message, port); // Proceeding: the provisional again
    const provisionals = await peer.waitFor(isStatus(180), 2);
    assert.equal(provisionals[0]?.text, provisionals[1]?.text);
    finish?.();
    await peer.waitFor((t) => header(t, 'Call-ID') === 'slow-tu' && isStatus(200)(t));
    assert.equal(seenCallId('slow-tu').length, 1);
  });

  it('matches an RFC 2543 request (no magic cookie in the branch) by its identity', async () => {
    behaviour = (req) => req.respond(200, 'OK');
    const old = rawRequest({ method: 'OPTIONS', branch: '0a1b2c', callId: 'rfc2543', peerPort: peer.port });
    peer.send(old, port);
    const [first] = await peer.waitFor((t) => header(t, 'Call-ID') === 'rfc2543');
    peer.send(old, port);
    const both = await peer.waitFor((t) => header(t, 'Call-ID') === 'rfc2543', 2);
    assert.equal(both[1]?.text, first?.text);
    assert.equal(seenCallId('rfc2543').length, 1);
  });

  it('answers a request that fails checkRequest through a transaction, so retransmissions get the same bytes', async () => {
    const req = rawRequest({ method: 'OPTIONS', callId: 'needs-foo', extra: 'Require: foo\r\n', peerPort: peer.port });
    peer.send(req, port);
    const [first] = await peer.waitFor((t) => header(t, 'Call-ID') === 'needs-foo');
    assert.match(firstLine(first?.text ?? ''), /^SIP\/2\.0 420 /);
    assert.equal(header(first?.text ?? '', 'Unsupported'), 'foo');
    assert.match(header(first?.text ?? '', 'To') ?? '', /;tag=/);
    peer.send(req, port);
    const both = await peer.waitFor((t) => header(t, 'Call-ID') === 'needs-foo', 2);
    assert.equal(both[1]?.text, first?.text);
    assert.equal(seenCallId('needs-foo').length, 0, 'the TU never saw it');
  });

  it('keeps no state for respondStateless: a retransmission reaches the TU again', async () => {
    behaviour = (req) => req.respondStateless(401, 'Unauthorized', { toTag: 'chal', headers: { 'WWW-Authenticate': 'Digest realm="x", nonce="n"' } });
    const before = stack.stats().serverTransactions;
    const register = rawRequest({ method: 'REGISTER', callId: 'challenge', peerPort: peer.port });
    peer.send(register, port);
    await peer.waitFor((t) => header(t, 'Call-ID') === 'challenge');
    peer.send(register, port);
    const both = await peer.waitFor((t) => header(t, 'Call-ID') === 'challenge', 2);
    assert.equal(seenCallId('challenge').length, 2);
    assert.match(firstLine(both[1]?.text ?? ''), /^SIP\/2\.0 401 /);
    assert.equal(stack.stats().serverTransactions, before);
  });

  it('answers 500 when the TU throws or its promise rejects, and keeps serving', async () => {
    behaviour = (req) => {
      if (req.request.headers['call-id'] === 'throws') throw new Error('TU bug');
      return Promise.reject(new Error('async TU bug'));
    };
    peer.send(rawRequest({ method: 'OPTIONS', callId: 'throws', peerPort: peer.port }), port);
    peer.send(rawRequest({ method: 'OPTIONS', callId: 'rejects', peerPort: peer.port }), port);
    const replies = await peer.waitFor((t) => ['throws', 'rejects'].includes(header(t, 'Call-ID') ?? ''), 2);
    for (const r of replies) assert.match(firstLine(r.text), /^SIP\/2\.0 500 /);
    behaviour = (req) => req.respond(200, 'OK');
    peer.send(rawRequest({ method: 'OPTIONS', callId: 'after-throw', peerPort: peer.port }), port);
    await peer.waitFor((t) => header(t, 'Call-ID') === 'after-throw');
  });

  it('sends 100 Trying by itself when the TU stays silent on an INVITE for 200 ms', async () => {
    behaviour = () => {};
    const sentAt = performance.now();
    peer.send(rawRequest({ method: 'INVITE', callId: 'silent-tu', peerPort: peer.port }), port);
    const [trying] = await peer.waitFor((t) => header(t, 'Call-ID') === 'silent-tu');
    const after = (trying?.at ?? 0) - sentAt;
    assert.match(firstLine(trying?.text ?? ''), /^SIP\/2\.0 100 Trying$/);
    assert.ok(after >= 150 && after < 450, `100 Trying after ${after} ms`);
    assert.equal(header(trying?.text ?? '', 'To'), '<sip:1001@127.0.0.1>', 'no To tag on 100');
    seenCallId('silent-tu')[0]?.respond(603, 'Decline');
  });

  it('sends 100 Trying at once when the INVITE is retransmitted before the TU spoke', async () => {
    behaviour = () => {};
    const invite = rawRequest({ method: 'INVITE', callId: 'early-retx', peerPort: peer.port });
    peer.send(invite, port);
    await sleep(20);
    const resentAt = performance.now();
    peer.send(invite, port);
    const [trying] = await peer.waitFor((t) => header(t, 'Call-ID') === 'early-retx');
    assert.ok((trying?.at ?? 0) - resentAt < 100);
    assert.match(firstLine(trying?.text ?? ''), /^SIP\/2\.0 100 /);
    seenCallId('early-retx')[0]?.respond(603, 'Decline');
  });

  it('retransmits a non-2xx final on Timer G (T1 doubling, capped at T2) until the ACK, which it absorbs', async () => {
    behaviour = (req) => req.respond(486, 'Busy Here', { toTag: 'busy' });
    const branch = newBranch();
    peer.send(rawRequest({ method: 'INVITE', branch, callId: 'busy', peerPort: peer.port }), port);
    const copies = await peer.waitFor((t) => header(t, 'Call-ID') === 'busy', 5, 2000);
    // sent at 0, then Timer G: 50, 100, 200 (capped), 200
    const g = gaps(copies.slice(0, 5));
    assertGaps(g, [50, 100, 200, 200]);
    assert.ok(copies.every((c) => c.text === copies[0]?.text), 'identical bytes each time');
    peer.send(rawRequest({ method: 'ACK', branch, callId: 'busy', toTag: 'busy', peerPort: peer.port }), port);
    await sleep(20);
    const countAtAck = peer.matching((t) => header(t, 'Call-ID') === 'busy').length;
    await sleep(500);
    assert.equal(peer.matching((t) => header(t, 'Call-ID') === 'busy').length, countAtAck, 'no retransmission after the ACK');
    assert.ok(!seen.some((r) => r.request.method === 'ACK' && r.request.headers['call-id'] === 'busy'), 'the ACK did not reach the TU');
  });

  it('resends the final for a retransmitted INVITE in Completed', async () => {
    behaviour = (req) => req.respond(480, 'Temporarily Unavailable', { toTag: 'tu' });
    const invite = rawRequest({ method: 'INVITE', callId: 'inv-completed', peerPort: peer.port });
    peer.send(invite, port);
    await peer.waitFor((t) => header(t, 'Call-ID') === 'inv-completed');
    peer.send(invite, port);
    const copies = await peer.waitFor((t) => header(t, 'Call-ID') === 'inv-completed', 2);
    assert.ok((copies[1]?.at ?? 0) - (copies[0]?.at ?? 0) < 40, 'the resend answers the retransmission, not Timer G');
    assert.equal(seenCallId('inv-completed').length, 1);
  });

  it('retransmits a 2xx to INVITE until the ACK arrives and hands that ACK to waitForAck, not to onRequest', async () => {
    let incoming: IncomingRequest | undefined;
    behaviour = (req) => {
      incoming = req;
      req.respond(200, 'OK', { toTag: 'callee', headers: { Contact: '<sip:1001@127.0.0.1>' } });
    };
    peer.send(rawRequest({ method: 'INVITE', callId: 'answered', cseq: 7, peerPort: peer.port }), port);
    const copies = await peer.waitFor((t) => header(t, 'Call-ID') === 'answered', 3);
    const g = gaps(copies);
    assertGaps(g, [50, 100]);
    assert.match(header(copies[0]?.text ?? '', 'To') ?? '', /;tag=callee$/);
    const ack = rawRequest({ method: 'ACK', callId: 'answered', cseq: 7, toTag: 'callee', peerPort: peer.port });
    const acked = incoming?.waitForAck();
    peer.send(ack, port);
    const got = await acked;
    assert.equal(got?.method, 'ACK');
    assert.equal(got?.headers['call-id'], 'answered');
    const count = peer.matching((t) => header(t, 'Call-ID') === 'answered').length;
    await sleep(300);
    assert.equal(peer.matching((t) => header(t, 'Call-ID') === 'answered').length, count, '2xx no longer retransmitted');
    assert.ok(!seen.some((r) => r.request.method === 'ACK' && r.request.headers['call-id'] === 'answered'));
  });

  it('gives up on a 2xx without ACK after 64*T1: waitForAck resolves undefined', async () => {
    let incoming: IncomingRequest | undefined;
    behaviour = (req) => {
      incoming = req;
      req.respond(200, 'OK', { toTag: 'noack' });
    };
    peer.send(rawRequest({ method: 'INVITE', callId: 'no-ack', peerPort: peer.port }), port);
    await peer.waitFor((t) => header(t, 'Call-ID') === 'no-ack');
    const started = performance.now();
    const result = await incoming?.waitForAck();
    const waited = performance.now() - started;
    assert.equal(result, undefined);
    assert.ok(waited > 2800 && waited < 4000, `gave up after ${waited} ms (64*T1 = 3200)`);
    const copies = peer.matching((t) => header(t, 'Call-ID') === 'no-ack');
    // 0, 50, 150, 350, then every 200 ms until 3200: 18 copies
    assert.ok(copies.length >= 16 && copies.length <= 19, `${copies.length} copies`);
  });

  it('answers CANCEL with 200, ends the INVITE with 487 (same To tag), tells onCancel, absorbs the ACK', async () => {
    behaviour = (req) => req.respond(180, 'Ringing', { toTag: 'ring' });
    const branch = newBranch();
    peer.send(rawRequest({ method: 'INVITE', branch, callId: 'to-cancel', cseq: 3, peerPort: peer.port }), port);
    await peer.waitFor(isStatus(180));
    peer.send(rawRequest({ method: 'CANCEL', branch, callId: 'to-cancel', cseq: 3, peerPort: peer.port }), port);
    const [ok] = await peer.waitFor((t) => header(t, 'CSeq') === '3 CANCEL');
    const [terminated] = await peer.waitFor((t) => header(t, 'Call-ID') === 'to-cancel' && isStatus(487)(t));
    assert.match(firstLine(ok?.text ?? ''), /^SIP\/2\.0 200 /);
    assert.equal(header(terminated?.text ?? '', 'To'), '<sip:1001@127.0.0.1>;tag=ring');
    assert.equal(header(ok?.text ?? '', 'To'), '<sip:1001@127.0.0.1>;tag=ring');
    assert.equal(cancelled.at(-1)?.invite.request.headers['call-id'], 'to-cancel');
    peer.send(rawRequest({ method: 'ACK', branch, callId: 'to-cancel', cseq: 3, toTag: 'ring', peerPort: peer.port }), port);
    await sleep(300);
    assert.equal(peer.matching((t) => header(t, 'Call-ID') === 'to-cancel' && isStatus(487)(t)).length, 1, '487 not retransmitted after ACK');
    assert.equal(seenCallId('to-cancel').length, 1, 'CANCEL and ACK did not reach the TU');
  });

  it('answers a CANCEL that matches nothing with 481', async () => {
    peer.send(rawRequest({ method: 'CANCEL', callId: 'cancel-nothing', peerPort: peer.port }), port);
    const [reply] = await peer.waitFor((t) => header(t, 'Call-ID') === 'cancel-nothing');
    assert.match(firstLine(reply?.text ?? ''), /^SIP\/2\.0 481 /);
  });
});

describe('request filter', () => {
  it('drops silently, or answers statelessly, before any transaction or the TU', async () => {
    const stack = new SipStack(options());
    const seen: string[] = [];
    stack.onRequest((req) => {
      seen.push(req.request.headers['call-id']);
      req.respond(200, 'OK');
    });
    stack.setRequestFilter((req) => {
      const callId = req.headers['call-id'];
      if (callId === 'banned') return 'drop';
      if (callId === 'refused') return { status: 403, reason: 'Forbidden', headers: { 'X-Why': 'policy' } };
      return undefined;
    });
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const port = stack.addresses.udp?.port ?? 0;
      peer.send(rawRequest({ method: 'OPTIONS', callId: 'banned', peerPort: peer.port }), port);
      // an invalid request (it would get the parser's 400) from a dropped source gets nothing either
      peer.send(rawRequest({ method: 'OPTIONS', callId: 'banned', extra: 'Max-Forwards: many\r\n', peerPort: peer.port }), port);
      peer.send(rawRequest({ method: 'OPTIONS', callId: 'refused', peerPort: peer.port }), port);
      peer.send(rawRequest({ method: 'OPTIONS', callId: 'welcome', peerPort: peer.port }), port);
      const replies = await peer.waitFor(() => true, 2);
      await sleep(50);
      assert.equal(peer.received.length, 2);
      const refused = replies.find((r) => header(r.text, 'Call-ID') === 'refused');
      assert.match(firstLine(refused?.text ?? ''), /^SIP\/2\.0 403 /);
      assert.equal(header(refused?.text ?? '', 'X-Why'), 'policy');
      assert.deepEqual(seen, ['welcome']);
      assert.equal(stack.stats().dropped, 2);
      assert.equal(stack.stats().serverTransactions, 1, 'only the welcome OPTIONS left state');
    } finally {
      peer.close();
      await stack.stop();
    }
  });
});

// --- client transactions --------------------------------------------------------

describe('client transactions', () => {
  it('retransmits a non-INVITE over UDP at T1 doubling up to T2 and times out with ETIMEDOUT at 64*T1', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const silentPeer = new UdpPeer();
    await silentPeer.bind();
    try {
      const started = performance.now();
      const result = stack.request(outgoing('OPTIONS', `sip:peer@127.0.0.1:${silentPeer.port}`), silentPeer.endpoint);
      await assert.rejects(result, (err: Error & { code?: string; status?: number }) => {
        assert.equal(err.code, 'ETIMEDOUT');
        assert.equal(err.status, 408);
        return true;
      });
      const waited = performance.now() - started;
      assert.ok(near(waited, 3200, 250), `timed out after ${waited} ms`);
      const copies = silentPeer.received;
      const g = gaps(copies);
      assertGaps(g, [50, 100, 200, 200, 200, 200]);
      assert.ok(near(median(g.slice(3)), 200, 25) && Math.max(...g) < 300, `capped at T2: gaps ${g.join(',')}`);
      // 0, 50, 150, 350, then every 200 ms until 3200: 19 copies when no timer runs late
      assert.ok(copies.length >= 16 && copies.length <= 20, `${copies.length} copies (19 expected)`);
      assert.ok(copies.every((c) => c.text === copies[0]?.text), 'each retransmission is the same bytes');
      assert.match(header(copies[0]?.text ?? '', 'Via') ?? '', /^SIP\/2\.0\/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK[A-Za-z0-9_-]{16};rport$/);
      assert.equal(stack.stats().clientTransactions, 0);
    } finally {
      silentPeer.close();
      await stack.stop();
    }
  });

  it('never retransmits over TCP, and still times out at 64*T1', async () => {
    const stack = new SipStack(options({ udp: undefined, tcp: { host: '127.0.0.1', port: 0 }, timers: { t1: 20, t2: 80 } }));
    await stack.start();
    const chunks: Buffer[] = [];
    const server = net.createServer((socket) => socket.on('data', (d: Buffer) => chunks.push(d)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const peerPort = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const started = performance.now();
      await assert.rejects(stack.request(outgoing('OPTIONS', `sip:peer@127.0.0.1:${peerPort};transport=tcp`), { transport: 'tcp', address: '127.0.0.1', port: peerPort }), {
        code: 'ETIMEDOUT',
      });
      assert.ok(near(performance.now() - started, 1280, 200));
      const text = Buffer.concat(chunks).toString('latin1');
      assert.equal(text.split('OPTIONS sip:').length - 1, 1, 'exactly one copy on the stream');
      assert.match(header(text, 'Via') ?? '', /^SIP\/2\.0\/TCP /);
    } finally {
      await stack.stop();
      server.close();
    }
  });

  it('retransmits an INVITE on Timer A doubling without the T2 cap, until Timer B', async () => {
    const stack = new SipStack(options({ timers: { t1: 20, t2: 80 } }));
    await stack.start();
    const silentPeer = new UdpPeer();
    await silentPeer.bind();
    try {
      await assert.rejects(stack.request(outgoing('INVITE', `sip:peer@127.0.0.1:${silentPeer.port}`), silentPeer.endpoint), { code: 'ETIMEDOUT' });
      const g = gaps(silentPeer.received);
      // 20, 40, 80, 160, 320 (4*T2: no cap), and 640 unless late timers push it past Timer B at 1280
      assert.ok(g.length === 5 || g.length === 6, `gaps ${g.join(',')}`);
      assertGaps(g, [20, 40, 80, 160, 320]);
    } finally {
      silentPeer.close();
      await stack.stop();
    }
  });

  it('ACKs a non-2xx final itself, with the INVITE branch and Route set, again for each retransmitted final', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const route = [nameAddr(`sip:proxy1@127.0.0.1:${peer.port};lr`), nameAddr('sip:proxy2.invalid;lr')];
      const invite = outgoing('INVITE', 'sip:1001@127.0.0.1', { route });
      const provisional: number[] = [];
      const result = stack.request(invite, peer.endpoint, (r) => provisional.push(r.status));
      const [received] = await peer.waitFor(isMethod('INVITE'));
      const inviteText = received?.text ?? '';
      peer.send(rawResponse(inviteText, 180, 'Ringing', 'uas'), stack.addresses.udp?.port ?? 0);
      peer.send(rawResponse(inviteText, 486, 'Busy Here', 'uas'), stack.addresses.udp?.port ?? 0);
      const response = await result;
      assert.equal(response.status, 486);
      assert.deepEqual(provisional, [180]);
      const [ack] = await peer.waitFor(isMethod('ACK'));
      const ackText = ack?.text ?? '';
      assert.equal(firstLine(ackText), 'ACK sip:1001@127.0.0.1 SIP/2.0');
      assert.deepEqual(headers(ackText, 'Via'), headers(inviteText, 'Via'));
      assert.deepEqual(headers(ackText, 'Route'), headers(inviteText, 'Route'));
      assert.equal(headers(ackText, 'Route').length, 1);
      assert.match(header(ackText, 'Route') ?? '', /^<sip:proxy1@127\.0\.0\.1:\d+;lr>, <sip:proxy2\.invalid;lr>$/);
      assert.equal(header(ackText, 'To'), '<sip:1001@127.0.0.1>;tag=uas');
      assert.equal(header(ackText, 'CSeq'), '1 ACK');
      assert.equal(header(ackText, 'Call-ID'), header(inviteText, 'Call-ID'));
      peer.send(rawResponse(inviteText, 486, 'Busy Here', 'uas'), stack.addresses.udp?.port ?? 0);
      const acks = await peer.waitFor(isMethod('ACK'), 2);
      assert.equal(acks[1]?.text, ackText);
    } finally {
      peer.close();
      await stack.stop();
    }
  });

  it('passes later 2xx (retransmissions, forks) to onAdditional2xx and the first one to the promise', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const extra: number[] = [];
      const result = stack.request(outgoing('INVITE', 'sip:1001@127.0.0.1'), peer.endpoint, undefined, { onAdditional2xx: (r) => extra.push(r.status) });
      const [received] = await peer.waitFor(isMethod('INVITE'));
      const ok = rawResponse(received?.text ?? '', 200, 'OK', 'uas');
      peer.send(ok, stack.addresses.udp?.port ?? 0);
      assert.equal((await result).status, 200);
      peer.send(ok, stack.addresses.udp?.port ?? 0);
      const deadline = performance.now() + 1000;
      while (extra.length === 0 && performance.now() < deadline) await sleep(5);
      assert.deepEqual(extra, [200]);
      await sleep(30);
      assert.equal(peer.matching(isMethod('ACK')).length, 0, 'the ACK for a 2xx is the dialog layer\'s, not the transaction\'s');
    } finally {
      peer.close();
      await stack.stop();
    }
  });

  it('CANCELs an INVITE after its provisional: same branch and Route, 200 to the CANCEL, 487 to the INVITE', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const stackPort = stack.addresses.udp?.port ?? 0;
      const invite = outgoing('INVITE', 'sip:1001@127.0.0.1', { route: [nameAddr('sip:edge.invalid;lr')] });
      const call = stack.request(invite, peer.endpoint);
      const [inv] = await peer.waitFor(isMethod('INVITE'));
      const inviteText = inv?.text ?? '';
      const cancelling = stack.cancel(invite, peer.endpoint);
      await sleep(100);
      assert.equal(peer.matching(isMethod('CANCEL')).length, 0, 'no CANCEL before a provisional (9.1)');
      peer.send(rawResponse(inviteText, 180, 'Ringing', 'uas'), stackPort);
      const [cancel] = await peer.waitFor(isMethod('CANCEL'));
      const cancelText = cancel?.text ?? '';
      assert.deepEqual(headers(cancelText, 'Via'), headers(inviteText, 'Via'));
      assert.deepEqual(headers(cancelText, 'Route'), headers(inviteText, 'Route'));
      assert.equal(header(cancelText, 'To'), header(inviteText, 'To'));
      assert.equal(header(cancelText, 'CSeq'), '1 CANCEL');
      peer.send(rawResponse(cancelText, 200, 'OK', 'uas'), stackPort);
      peer.send(rawResponse(inviteText, 487, 'Request Terminated', 'uas'), stackPort);
      assert.equal((await cancelling)?.status, 200);
      assert.equal((await call).status, 487);
      await peer.waitFor(isMethod('ACK'));
    } finally {
      peer.close();
      await stack.stop();
    }
  });

  it('drops responses that match no client transaction', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const stray = rawResponse(rawRequest({ method: 'OPTIONS', callId: 'stray', peerPort: peer.port }), 200, 'OK', 'x');
      peer.send(stray, stack.addresses.udp?.port ?? 0);
      const deadline = performance.now() + 1000;
      while (stack.stats().dropped === 0 && performance.now() < deadline) await sleep(5);
      assert.equal(stack.stats().dropped, 1);
      assert.equal(peer.received.length, 0);
    } finally {
      peer.close();
      await stack.stop();
    }
  });

  it('sends a request to its own address over the wire and gets its own TU\'s answer (UDP and TCP)', async () => {
    const stack = new SipStack(options({ tcp: { host: '127.0.0.1', port: 0 } }));
    const seen: string[] = [];
    stack.onRequest((req) => {
      seen.push(`${req.source.transport} ${req.request.method}`);
      req.respond(200, 'OK', { toTag: 'self' });
    });
    await stack.start();
    try {
      const udp = stack.addresses.udp;
      const tcp = stack.addresses.tcp;
      const viaUdp = await stack.request(outgoing('OPTIONS', `sip:self@127.0.0.1:${udp?.port}`), { transport: 'udp', address: '127.0.0.1', port: udp?.port ?? 0 });
      const viaTcp = await stack.request(outgoing('OPTIONS', `sip:self@127.0.0.1:${tcp?.port};transport=tcp`), { transport: 'tcp', address: '127.0.0.1', port: tcp?.port ?? 0 });
      assert.equal(viaUdp.status, 200);
      assert.equal(viaTcp.status, 200);
      assert.deepEqual(seen, ['udp OPTIONS', 'tcp OPTIONS']);
    } finally {
      await stack.stop();
    }
  });

  it('rejects with ETRANSPORT when a TCP connection cannot be made', async () => {
    const stack = new SipStack(options({ udp: undefined, tcp: { host: '127.0.0.1', port: 0 } }));
    await stack.start();
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const address = closed.address();
    const deadPort = typeof address === 'object' && address !== null ? address.port : 0;
    await new Promise<void>((r) => closed.close(() => r()));
    try {
      await assert.rejects(stack.request(outgoing('OPTIONS', `sip:x@127.0.0.1:${deadPort}`), { transport: 'tcp', address: '127.0.0.1', port: deadPort }), { code: 'ETRANSPORT' });
      assert.equal(stack.stats().clientTransactions, 0);
    } finally {
      await stack.stop();
    }
  });

  it('rejects pending requests with ESTOPPED when the stack stops', async () => {
    const stack = new SipStack(options());
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    const pending = stack.request(outgoing('OPTIONS', 'sip:x@127.0.0.1'), peer.endpoint);
    await peer.waitFor(isMethod('OPTIONS'));
    await stack.stop();
    peer.close();
    await assert.rejects(pending, { code: 'ESTOPPED' });
  });
});

// --- identifiers and memory -----------------------------------------------------

describe('branch ids', () => {
  it('are z9hG4bK plus 96 random bits, and 1,000,000 of them are all different', () => {
    const seenIds = new Set<string>();
    for (let i = 0; i < 1_000_000; i++) seenIds.add(newBranch());
    assert.equal(seenIds.size, 1_000_000);
    const sample = newBranch();
    assert.match(sample, /^z9hG4bK[A-Za-z0-9_-]{16}$/);
  });
});

describe('completed transactions', () => {
  it('keep 200,000 completed REGISTER answers in at most 30 MB beyond the response bytes', () => {
    const gc = vm.runInNewContext('gc') as () => void;
    const response = Buffer.from(
      'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1234567890abcdef;rport=5060;received=192.168.1.20\r\n' +
        'From: <sip:1001@pbx>;tag=abc\r\nTo: <sip:1001@pbx>;tag=reg\r\nCall-ID: 1234567890@192.168.1.20\r\nCSeq: 2 REGISTER\r\n' +
        'Contact: <sip:1001@192.168.1.20:5060>;expires=300\r\nContent-Length: 0\r\n\r\n',
    );
    const keyOf = (i: number): string => `z9hG4bK${(i * 7919).toString(16).padStart(16, '0')}\u0001192.168.${i & 255}.${(i >> 8) & 255}:5060\u0001REGISTER`;
    const n = 200_000;
    gc();
    const before = process.memoryUsage();
    const store = new CompletedResponseStore();
    for (let i = 0; i < n; i++) store.add(keyOf(i), response, 10_000 + i);
    gc();
    const afterAdd = process.memoryUsage();
    const used = afterAdd.heapUsed - before.heapUsed + (afterAdd.arrayBuffers - before.arrayBuffers);
    const beyond = used - n * response.length;
    assert.ok(beyond <= 30 * 1024 * 1024, `${(beyond / 1048576).toFixed(1)} MB beyond the response bytes`);
    assert.equal(store.lookup(keyOf(123_456), 0)?.toString(), response.toString());
    assert.equal(store.lookup(keyOf(123_456).replace('REGISTER', 'OPTIONS'), 0), undefined);
    // expiry: one sweep drops everything older than now, and frees the chunks
    store.sweep(10_000 + n / 2 - 1); // entries 0..n/2-1 expire at or before this
    assert.equal(store.size, n / 2);
    assert.equal(store.lookup(keyOf(10), 0), undefined);
    assert.ok(store.lookup(keyOf(n - 1), 0) !== undefined);
    store.sweep(Number.POSITIVE_INFINITY);
    assert.equal(store.size, 0);
    assert.equal(store.arenaBytes, 0);
  });

  it('reuse the chunks of expired entries at a steady rate, and keep none once empty', () => {
    const store = new CompletedResponseStore({ chunkBytes: 4096 });
    const response = Buffer.alloc(400, 0x41);
    // 10 entries per tick, each living 32 ticks: ~32 chunks live, a sweep per tick.
    let peakChunks = 0;
    for (let tick = 0; tick < 500; tick++) {
      for (let i = 0; i < 10; i++) store.add(`k${tick}-${i}`, response, tick + 32);
      store.sweep(tick);
      peakChunks = Math.max(peakChunks, (store.arenaBytes + store.spareBytes) / 4096);
      if (tick > 100) assert.ok(store.spareBytes <= (4 + Math.ceil(store.arenaBytes / 4096 / 32)) * 4096);
    }
    assert.ok(peakChunks <= 36 + 6, `${peakChunks} chunks at most for ~32 live`);
    assert.equal(store.lookup('k499-9', 499)?.length, 400);
    store.sweep(Number.POSITIVE_INFINITY);
    assert.equal(store.arenaBytes + store.spareBytes, 0);
  });

  it('expire after Timer J on UDP, after which a retransmission is a new request', async () => {
    const stack = new SipStack(options({ timers: { t1: 10, t2: 40, t4: 50 } })); // Timer J = 640 ms
    let calls = 0;
    stack.onRequest((req) => {
      calls++;
      req.respond(200, 'OK');
    });
    await stack.start();
    const peer = new UdpPeer();
    await peer.bind();
    try {
      const port = stack.addresses.udp?.port ?? 0;
      const requests = Array.from({ length: 50 }, (_, i) => rawRequest({ method: 'OPTIONS', callId: `j-${i}`, peerPort: peer.port }));
      for (const r of requests) peer.send(r, port);
      await peer.waitFor(() => true, 50);
      assert.equal(stack.stats().serverTransactions, 50);
      await sleep(1200);
      assert.equal(stack.stats().serverTransactions, 0);
      peer.send(requests[0] ?? '', port);
      await peer.waitFor(() => true, 51);
      assert.equal(calls, 51);
    } finally {
      peer.close();
      await stack.stop();
    }
  });

  it('keep nothing after the final on TCP (Timer J = 0)', async () => {
    const stack = new SipStack(options({ udp: undefined, tcp: { host: '127.0.0.1', port: 0 } }));
    stack.onRequest((req) => req.respond(200, 'OK'));
    await stack.start();
    const socket = net.connect(stack.addresses.tcp?.port ?? 0, '127.0.0.1');
    try {
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      socket.write(rawRequest({ method: 'OPTIONS', callId: 'tcp-j', peerPort: 5070 }).replace('SIP/2.0/UDP', 'SIP/2.0/TCP'));
      const deadline = performance.now() + 2000;
      while (!got.includes('\r\n\r\n') && performance.now() < deadline) await sleep(5);
      assert.match(got, /^SIP\/2\.0 200 OK/);
      assert.equal(stack.stats().serverTransactions, 0);
    } finally {
      socket.destroy();
      await stack.stop();
    }
  });
});
