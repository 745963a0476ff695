// Phone auto-provisioning against the running agent: each allowed phone fetches its
// configuration file over real HTTP (and HTTPS), the file carries the SIP password the
// agent generated for that phone, and the registrar accepts exactly that password.
// Unknown MACs get 404; paths that try to leave the phone files are refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PHONE_CREDENTIALS_FILE } from '../../provisioning/phones/credentials.ts';
import { PROVISIONING_DIR } from '../../provisioning/provisioned.ts';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { statusOf } from '../helpers/raw-sip.ts';
import { registerWithAuth, UdpPeer } from '../helpers/sip-client.ts';

const YEALINK = '80:5E:C0:12:34:56';
const POLYCOM = '00-04-f2-ab-cd-ef';
const GRANDSTREAM = '000b82a1b2c3';

/** A raw GET: the path goes on the wire exactly as given (fetch would normalize "..") */
function get(port: number, rawPath: string, scheme: 'http' | 'https' = 'http'): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const mod = scheme === 'http' ? http : https;
    const req = mod.request({ host: '127.0.0.1', port, path: rawPath, method: 'GET', rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('phone auto-provisioning over HTTP(S)', { timeout: 90_000 }, () => {
  let dir: string;
  let agent: AgentHandle;
  let httpPort: number;
  let httpsPort: number;
  let credentials: Record<string, { extension: string; password: string }>;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'branchline-phones-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=branchline.test'], { stdio: 'ignore' });
    httpPort = await freeUdpTcpPort();
    httpsPort = await freeUdpTcpPort();
    agent = await startAgent({
      extensions: [{ number: '1001', password: 'configured1001' }],
      extraConfig: {
        provisioning: {
          phones: {
            http: `127.0.0.1:${httpPort}`,
            https: { listen: `127.0.0.1:${httpsPort}`, cert, key },
            sip_server: '192.0.2.10',
            voicemail_number: '*97',
            ntp_server: 'ntp.branch.example',
            time_zone: 'Europe/Berlin',
            devices: [
              { mac: YEALINK, vendor: 'yealink', extension: '2001', name: 'Reception' },
              { mac: POLYCOM, vendor: 'polycom', extension: '2002', name: 'O\'Brien & Co <sales>' },
              { mac: GRANDSTREAM, vendor: 'grandstream', extension: '2003' },
            ],
          },
        },
      },
    });
    const file = path.join(agent.stateDir, PROVISIONING_DIR, PHONE_CREDENTIALS_FILE);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    credentials = JSON.parse(readFileSync(file, 'utf8')) as typeof credentials;
  });

  after(async () => {
    await agent?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a Yealink phone gets its .cfg with its account, server, voicemail, NTP and time zone', async () => {
    const res = await get(httpPort, '/805ec0123456.cfg');
    assert.equal(res.status, 200);
    assert.match(res.type ?? '', /^text\/plain/);
    const password = credentials['805ec0123456']?.password ?? '';
    assert.ok(password.length >= 20);
    const lines = new Map(res.body.split('\n').filter((l) => l.includes(' = ')).map((l) => l.split(' = ') as [string, string]));
    assert.ok(res.body.startsWith('#!version:1.0.0.1\n'));
    assert.equal(lines.get('account.1.user_name'), '2001');
    assert.equal(lines.get('account.1.auth_name'), '2001');
    assert.equal(lines.get('account.1.password'), password);
    assert.equal(lines.get('account.1.display_name'), 'Reception');
    assert.equal(lines.get('account.1.sip_server.1.address'), '192.0.2.10');
    assert.equal(lines.get('account.1.sip_server.1.port'), String(agent.udpPort));
    assert.equal(lines.get('voice_mail.number.1'), '*97');
    assert.equal(lines.get('local_time.ntp_server1'), 'ntp.branch.example');
    assert.equal(lines.get('local_time.time_zone'), '+1');
    // The MAC's case in the request does not matter; HTTPS serves the same file.
    assert.equal((await get(httpPort, '/805EC0123456.cfg')).body, res.body);
    assert.equal((await get(httpsPort, '/805ec0123456.cfg', 'https')).body, res.body);
  });

  test('the generated password is the one the registrar accepts', async () => {
    const peer = await UdpPeer.open();
    try {
      const good = await registerWithAuth(peer, agent.udpPort, { user: '2001', password: credentials['805ec0123456']?.password ?? '', domain: agent.domain });
      assert.equal(statusOf(good ?? ''), 200);
      const bad = await registerWithAuth(peer, agent.udpPort, { user: '2002', password: credentials['805ec0123456']?.password ?? '', domain: agent.domain });
      assert.equal(statusOf(bad ?? ''), 403);
    } finally {
      peer.close();
    }
  });

  test('a Polycom phone gets its master file and its XML, escaped', async () => {
    const master = await get(httpPort, '/0004f2abcdef.cfg');
    assert.equal(master.status, 200);
    assert.match(master.body, /CONFIG_FILES="phone-0004f2abcdef\.cfg"/);
    const phone = await get(httpPort, '/phone-0004f2abcdef.cfg');
    assert.equal(phone.status, 200);
    assert.match(phone.type ?? '', /^application\/xml/);
    assert.match(phone.body, new RegExp(`reg\\.1\\.auth\\.password="${credentials['0004f2abcdef']?.password}"`));
    assert.match(phone.body, /reg\.1\.address="2002"/);
    assert.match(phone.body, /reg\.1\.displayName="O&apos;Brien &amp; Co &lt;sales&gt;"/);
    assert.match(phone.body, /tcpIpApp\.sntp\.gmtOffset="3600"/);
    assert.match(phone.body, /msg\.mwi\.1\.callBack="\*97"/);
  });

  test('a Grandstream phone gets cfg<mac>.xml', async () => {
    const res = await get(httpPort, '/cfg000b82a1b2c3.xml');
    assert.equal(res.status, 200);
    assert.match(res.body, /<mac>000b82a1b2c3<\/mac>/);
    assert.match(res.body, /<P35>2003<\/P35>/);
    assert.match(res.body, new RegExp(`<P34>${credentials['000b82a1b2c3']?.password}</P34>`));
    assert.match(res.body, /<P47>192\.0\.2\.10:\d+<\/P47>/);
    assert.match(res.body, /<P33>\*97<\/P33>/);
    assert.match(res.body, /<P64>780<\/P64>/);
  });

  test('unknown MACs and other vendors\' file names are 404; traversal is refused', async () => {
    assert.equal((await get(httpPort, '/001122334455.cfg')).status, 404);
    assert.equal((await get(httpPort, '/cfg805ec0123456.xml')).status, 404, 'a Yealink MAC has no Grandstream file');
    assert.equal((await get(httpPort, `/${PHONE_CREDENTIALS_FILE}`)).status, 404);
    for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', `/${PROVISIONING_DIR}/${PHONE_CREDENTIALS_FILE}`, '/..', '/805ec0123456.cfg/..']) {
      const res = await get(httpPort, p);
      assert.equal(res.status, 400, `${p} answered ${res.status}`);
      assert.ok(!res.body.includes('root:'));
    }
  });

  test('no password ever appears in the agent log', () => {
    const log = JSON.stringify(agent.logs());
    for (const c of Object.values(credentials)) assert.ok(!log.includes(c.password));
    assert.ok(agent.logs().some((l) => l['event'] === 'phones.fetched' && l['mac'] === '805ec0123456'));
  });
});
