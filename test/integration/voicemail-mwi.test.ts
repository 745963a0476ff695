// Message-waiting against SIPp phones and the real agent (in this process, so the
// test can leave messages over RTP). A subscribed phone: NOTIFY on SUBSCRIBE with
// the counts, after a deposit, after an agent restart (restored subscription,
// CSeq still rising), and the final NOTIFY on unsubscribe. A phone that never
// subscribes: unsolicited NOTIFY after a deposit, after an agent restart and after
// it re-registers.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Agent } from '../../agent/agent.ts';
import { configFromData } from '../../agent/config/load.ts';
import { PcmSource } from '../../agent/media/audio-source.ts';
import { MediaEngine } from '../../agent/media/engine.ts';
import { writeWavFile } from '../../agent/media/wav.ts';
import { UNSOLICITED_AFTER_REGISTER_MS } from '../../agent/voicemail/mwi/mwi-service.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { authorization, challengesOf, headerValuesOf, registerRequest } from '../helpers/sip-client.ts';
import { logValues, runSipp, writeUsersFile } from '../helpers/sipp.ts';
import { waitFor } from '../helpers/site-sync.ts';
import { afterBeep, trimmedSpeech } from '../helpers/voicemail.ts';

const DOMAIN = 'branchline.test';

interface Site {
  agent: Agent;
  port: number;
  stateDir: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function startSite(t: TestContext): Promise<Site> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-mwi-'));
  const port = await freeUdpTcpPort();
  const mqtt = await freeUdpTcpPort();
  const rtp = 42000 + Math.floor(Math.random() * 400) * 2;
  const config = configFromData(
    {
      site: { id: 'mwi' },
      state_dir: stateDir,
      log: { level: 'silent' },
      sip: { domain: DOMAIN, udp: `127.0.0.1:${port}`, tcp: `127.0.0.1:${port}`, auth: { algorithms: ['MD5'] } },
      mqtt: { embedded: { listen: `127.0.0.1:${mqtt}` } },
      media: { bind_address: '127.0.0.1', port_range: { min: rtp, max: rtp + 40 } },
      voicemail: { mwi: { min_expires: 10 } },
      extensions: [
        { number: '1001', password: 'secret1', voicemail: { pin: '1234', silence_seconds: 1 } },
        { number: '1002', password: 'secret2', voicemail: { pin: '1234', silence_seconds: 1 } },
      ],
    },
    path.join(stateDir, 'config.yaml'),
  );
  const logger = pino({ level: process.env['VM_TEST_LOG'] ?? 'silent' });
  const site: Site = {
    agent: new Agent(config, logger),
    port,
    stateDir,
    async restart() {
      await site.agent.stop();
      site.agent = new Agent(config, logger);
      await site.agent.start();
    },
    async stop() {
      await site.agent.stop();
    },
  };
  await site.agent.start();
  t.after(async () => {
    await site.stop().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  });
  return site;
}

/** Leaves a spoken message in `mailbox` through the agent's voicemail, over real RTP. */
async function leaveMessage(site: Site, mailbox: string, t: TestContext): Promise<void> {
  const media = new MediaEngine({ bindAddress: '127.0.0.1' }, pino({ level: 'silent' }));
  media.start();
  t.after(() => media.stop());
  const agentLeg = await media.createSession({ telephoneEventPt: 101 });
  const phone = await media.createSession({ telephoneEventPt: 101 });
  agentLeg.setRemote({ address: '127.0.0.1', port: phone.localPort });
  phone.setRemote({ address: '127.0.0.1', port: agentLeg.localPort });
  const vm = site.agent.voicemail;
  assert.ok(vm, 'voicemail started');
  const result = vm.deposit(agentLeg, { mailbox, reason: 'no-answer', caller: { number: '2000' } });
  await sleep(300);
  const tone = afterBeep(phone);
  await phone.sendDigits('#');
  await tone;
  await phone.play(new PcmSource(await trimmedSpeech('Please call me back about the meeting.')));
  assert.equal((await result).outcome, 'saved');
  await agentLeg.stop();
  await phone.stop();
}

test('a subscribed phone: NOTIFY with counts on SUBSCRIBE, after a deposit, after a restart; final NOTIFY on unsubscribe', async (t) => {
  const site = await startSite(t);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-sipp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const users = await writeUsersFile(path.join(dir, 'users.csv'), [{ user: '1001', password: 'secret1' }]);
  const sipp = runSipp({
    scenario: 'mwi-subscribe',
    remote: `127.0.0.1:${site.port}`,
    calls: 1,
    usersFile: users,
    authUri: DOMAIN,
    set: { domain: DOMAIN, expires: 120 },
    timeoutMs: 120_000,
  });
  await waitFor('the subscription', () => (site.agent.voicemail?.mwi?.subscriptionCount ?? 0) >= 1 && (site.agent.voicemail?.mwi?.notifiesSent ?? 0) >= 1);
  await sleep(300);
  await leaveMessage(site, '1001', t);
  await sleep(500);
  await site.restart();
  const r = await sipp;
  assert.equal(r.successful, 1, `SIPp: ${r.errors || r.output.slice(-2000)}`);
  const notifies = logValues(r, 'notify').map((l) => l.split('|'));
  assert.deepEqual(
    notifies.map(([mw, vm, state]) => [mw, vm, state]),
    [
      ['no', '0/0', 'active'],
      ['yes', '1/0', 'active'],
      ['yes', '1/0', 'active'], // after the restart, inside the same dialog
    ],
  );
  const cseqs = notifies.map((n) => Number(n[3]));
  assert.ok(cseqs[0]! < cseqs[1]! && cseqs[1]! < cseqs[2]!, `NOTIFY CSeq keeps rising across the restart: ${cseqs}`);
  assert.deepEqual(logValues(r, 'final'), ['terminated']);
  assert.equal(site.agent.voicemail?.mwi?.subscriptionCount, 0);
});

test('a phone that does not subscribe gets unsolicited NOTIFY: after a deposit, after a restart, after it re-registers', async (t) => {
  const site = await startSite(t);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-sipp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const users = await writeUsersFile(path.join(dir, 'users.csv'), [{ user: '1002', password: 'secret2' }]);
  const phonePort = await freeUdpTcpPort();
  const register = async (): Promise<void> => {
    const r = await runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${site.port}`, localPort: phonePort, calls: 1, usersFile: users, authUri: DOMAIN, set: { domain: DOMAIN, expires: 300 } });
    assert.equal(r.successful, 1, r.errors);
  };
  /** The phone's port answering one NOTIFY; resolves with what the NOTIFY said. */
  const listen = async (): Promise<string[]> => {
    const r = await runSipp({ scenario: 'mwi-notify-uas', localPort: phonePort, calls: 1, timeoutMs: 40_000 });
    assert.equal(r.successful, 1, `no NOTIFY: ${r.errors || r.output.slice(-1500)}`);
    return logValues(r, 'notify');
  };
  const whileListening = async (trigger: () => Promise<void>): Promise<string[]> => {
    const heard = listen();
    await sleep(500); // SIPp is listening
    await trigger();
    return heard;
  };
  // Registering (and re-registering) sends the current state at once; the register
  // run holds the port then, and the agent's retransmission (RFC 3261 Timer E)
  // reaches the listener started right after.
  await register();
  assert.deepEqual(await listen(), ['no|0/0|message-summary']);
  assert.deepEqual(await whileListening(() => leaveMessage(site, '1002', t)), ['yes|1/0|message-summary']);
  assert.deepEqual(await whileListening(() => site.restart()), ['yes|1/0|message-summary']);
  await register();
  assert.deepEqual(await listen(), ['yes|1/0|message-summary']);
});

test('SUBSCRIBEs the agent refuses, each with the response that says why', async (t) => {
  const site = await startSite(t);
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => socket.close());
  const port = socket.address().port;
  const subscribe = async (o: { user: string; event?: string; expires?: number; toTag?: string }): Promise<string> => {
    const text = [
      `SUBSCRIBE sip:${o.user}@${DOMAIN} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
      'Max-Forwards: 70',
      `From: <sip:${o.user}@${DOMAIN}>;tag=f${Math.random().toString(36).slice(2)}`,
      `To: <sip:${o.user}@${DOMAIN}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
      `Call-ID: ${Math.random().toString(36).slice(2)}@test`,
      'CSeq: 1 SUBSCRIBE',
      `Contact: <sip:${o.user}@127.0.0.1:${port}>`,
      `Event: ${o.event ?? 'message-summary'}`,
      `Expires: ${o.expires ?? 600}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const answer = new Promise<string>((resolve) => socket.once('message', (m) => resolve(m.toString())));
    socket.send(text, site.port, '127.0.0.1');
    return answer;
  };
  const status = (res: string): string => res.split('\r\n')[0] ?? '';
  const presence = await subscribe({ user: '1001', event: 'presence' });
  assert.match(status(presence), /^SIP\/2.0 489 /);
  assert.match(presence, /\r\nAllow-Events: message-summary\r\n/i);
  const brief = await subscribe({ user: '1001', expires: 5 });
  assert.match(status(brief), /^SIP\/2.0 423 /);
  assert.match(brief, /\r\nMin-Expires: 10\r\n/i);
  assert.match(status(await subscribe({ user: '1001' })), /^SIP\/2.0 403 /, 'not from a registered phone of 1001');
  assert.match(status(await subscribe({ user: '3000' })), /^SIP\/2.0 404 /, 'no such mailbox');
  assert.match(status(await subscribe({ user: '1001', toTag: 'not-ours' })), /^SIP\/2.0 481 /, 'a refresh of a subscription we do not have');
  assert.equal(site.agent.voicemail?.mwi?.subscriptionCount, 0);
});

/** A phone on a raw UDP socket: registers with digest auth, subscribes, answers NOTIFYs (unless held). */
interface RawPhone {
  port: number;
  /** While true, NOTIFYs are not answered (the agent retransmits them). */
  hold: boolean;
  send(text: string): void;
  next(what: string, match: (m: string) => boolean, timeoutMs?: number): Promise<string>;
  answer(notify: string): void;
  register(user: string, password: string): Promise<void>;
  subscribe(user: string, cseq: number, expires: number, toTag?: string): void;
  inbox: string[];
}

async function rawPhone(t: TestContext, site: Site): Promise<RawPhone> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => socket.close());
  const port = socket.address().port;
  const waiters: Array<() => void> = [];
  const send = (text: string): void => void socket.send(text, site.port, '127.0.0.1');
  const phone: RawPhone = {
    port,
    hold: false,
    inbox: [],
    send,
    answer(notify) {
      const keep = ['Via', 'From', 'To', 'Call-ID', 'CSeq'].flatMap((h) => headerValuesOf(notify, h).map((v) => `${h}: ${v}${h === 'To' && !v.includes('tag=') ? ';tag=phone' : ''}`));
      send(['SIP/2.0 200 OK', ...keep, 'Content-Length: 0', '', ''].join('\r\n'));
    },
    async next(what, match, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = phone.inbox.findIndex(match);
        if (i >= 0) return phone.inbox.splice(i, 1)[0]!;
        if (Date.now() > deadline) assert.fail(`no ${what}; got: ${phone.inbox.map((m) => m.split('\r\n')[0]).join(', ')}`);
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(100)]);
      }
    },
    async register(user, password) {
      send(registerRequest({ domain: DOMAIN, localPort: port, user, callId: `reg-${port}`, cseq: 1 }));
      const challenge = challengesOf(await phone.next('401', (m) => m.startsWith('SIP/2.0 401')))[0]!;
      send(registerRequest({ domain: DOMAIN, localPort: port, user, callId: `reg-${port}`, cseq: 2, auth: authorization({ challenge, username: user, password, method: 'REGISTER', uri: `sip:${DOMAIN}` }) }));
      await phone.next('200 to REGISTER', (m) => m.startsWith('SIP/2.0 200') && m.includes('REGISTER'));
    },
    subscribe(user, cseq, expires, toTag) {
      send(
        [
          `SUBSCRIBE sip:${user}@${DOMAIN} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKs${cseq}${Date.now()};rport`,
          'Max-Forwards: 70',
          `From: <sip:${user}@${DOMAIN}>;tag=sub-from`,
          `To: <sip:${user}@${DOMAIN}>${toTag ? `;tag=${toTag}` : ''}`,
          `Call-ID: sub-${port}`,
          `CSeq: ${cseq} SUBSCRIBE`,
          `Contact: <sip:${user}@127.0.0.1:${port}>`,
          'Event: message-summary',
          `Expires: ${expires}`,
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      );
    },
  };
  socket.on('message', (m) => {
    const text = m.toString();
    if (text.startsWith('NOTIFY ') && !phone.hold) phone.answer(text);
    phone.inbox.push(text);
    for (const w of waiters.splice(0)) w();
  });
  return phone;
}

const subscriptionState = (m: string): string => headerValuesOf(m, 'Subscription-State')[0] ?? '';
const cseqOf = (m: string): number => Number((headerValuesOf(m, 'CSeq')[0] ?? '').split(' ')[0]);

test('subscription refresh and expiry: each refresh gets a NOTIFY; a subscription left to run out ends with terminated;reason=timeout', async (t) => {
  const site = await startSite(t);
  const phone = await rawPhone(t, site);
  // The subscription must come from a registered phone.
  await phone.register('1001', 'secret1');
  const inDialog = (m: string): boolean => m.startsWith('NOTIFY ') && headerValuesOf(m, 'Call-ID')[0] === `sub-${phone.port}`;

  phone.subscribe('1001', 1, 10);
  const ok = await phone.next('200 to SUBSCRIBE', (m) => m.startsWith('SIP/2.0 200') && m.includes('SUBSCRIBE'));
  assert.equal(headerValuesOf(ok, 'Expires')[0], '10');
  const toTag = /tag=([^;>\s]+)/.exec(headerValuesOf(ok, 'To')[0] ?? '')?.[1];
  assert.ok(toTag);
  assert.match(subscriptionState(await phone.next('first NOTIFY', inDialog)), /^active;expires=(9|10)$/);

  phone.subscribe('1001', 2, 10, toTag);
  await phone.next('200 to the refresh', (m) => m.startsWith('SIP/2.0 200') && m.includes('2 SUBSCRIBE'));
  const refreshed = await phone.next('NOTIFY after the refresh', inDialog);
  assert.match(subscriptionState(refreshed), /^active;expires=(9|10)$/);
  assert.match(refreshed, /Messages-Waiting: no\r\nMessage-Account: sip:1001@branchline\.test\r\nVoice-Message: 0\/0 \(0\/0\)\r\n/);

  const last = await phone.next('NOTIFY at expiry', inDialog, 14_000);
  assert.equal(subscriptionState(last), 'terminated;reason=timeout');
  assert.equal(site.agent.voicemail?.mwi?.subscriptionCount, 0);
  // The dialog is over: a refresh now is for a subscription that does not exist.
  phone.subscribe('1001', 3, 10, toTag);
  await phone.next('481', (m) => m.startsWith('SIP/2.0 481'));
});

test('a phone that subscribes right after registering gets no unsolicited NOTIFY, only the NOTIFYs of its dialog', async (t) => {
  const site = await startSite(t);
  const phone = await rawPhone(t, site);
  await phone.register('1001', 'secret1');
  phone.subscribe('1001', 1, 120);
  await phone.next('200 to SUBSCRIBE', (m) => m.startsWith('SIP/2.0 200') && m.includes('SUBSCRIBE'));
  const inDialog = (m: string): boolean => m.startsWith('NOTIFY ') && headerValuesOf(m, 'Call-ID')[0] === `sub-${phone.port}`;
  await phone.next('first NOTIFY', inDialog);
  // Past the moment the unsolicited NOTIFY of the registration would have gone out.
  await sleep(UNSOLICITED_AFTER_REGISTER_MS + 1000);
  assert.deepEqual(phone.inbox.filter((m) => m.startsWith('NOTIFY ') && !inDialog(m)).map((m) => m.split('\r\n').find((l) => l.startsWith('Call-ID'))), [], 'no NOTIFY outside the dialog');
});

test('one NOTIFY in flight per subscription: changes while the phone has not answered coalesce into one NOTIFY with the latest counts', async (t) => {
  const site = await startSite(t);
  const vm = site.agent.voicemail!;
  const phone = await rawPhone(t, site);
  await phone.register('1001', 'secret1');
  const inDialog = (m: string): boolean => m.startsWith('NOTIFY ') && headerValuesOf(m, 'Call-ID')[0] === `sub-${phone.port}`;
  phone.subscribe('1001', 1, 120);
  await phone.next('200 to SUBSCRIBE', (m) => m.startsWith('SIP/2.0 200') && m.includes('SUBSCRIBE'));
  const first = await phone.next('first NOTIFY', inDialog);

  // Three messages arrive while the phone sits on the next NOTIFY.
  phone.hold = true;
  for (let i = 0; i < 3; i++) {
    const pending = await vm.store.beginDeposit({ mailbox: '1001', caller: '2000', reason: 'no-answer' });
    const written = await writeWavFile(pending.file, new Int16Array(8000).fill(900), { encoding: 'ulaw' });
    await vm.store.commitDeposit(pending.id, written.durationMs);
    site.agent.bus.emit('voicemail.counts', { mailbox: '1001', ...(await vm.store.counts('1001')) });
  }
  const held = await phone.next('NOTIFY after the first change', inDialog);
  await sleep(1500); // the agent retransmits it; it sends no other NOTIFY meanwhile
  const during = [held, ...phone.inbox.filter(inDialog)];
  assert.deepEqual([...new Set(during.map(cseqOf))], [cseqOf(held)], 'no second NOTIFY before the first is answered');
  phone.inbox.splice(0);
  phone.hold = false;
  phone.answer(held);
  const latest = await phone.next('the coalesced NOTIFY', (m) => inDialog(m) && cseqOf(m) > cseqOf(held));
  assert.match(latest, /Voice-Message: 3\/0 \(0\/0\)/);
  await sleep(1000);
  assert.deepEqual(phone.inbox.filter((m) => inDialog(m) && cseqOf(m) > cseqOf(latest)), [], 'and nothing after it');
  assert.ok(cseqOf(first) < cseqOf(held));
});
