// Zero-touch provisioning end to end against a real Mosquitto that runs with the
// password file and ACL the controller generates: a new appliance claims itself with a
// one-time token (`branchline provision`), an operator approves it with branchctl, the
// appliance stores its grant (mode 0600) and then runs as its site through the broker
// login it received; the broker keeps each site to its own topics.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import YAML from 'yaml';
import { createLogger } from '../../agent/log/logger.ts';
import { ROOT } from '../../agent/sync/protocol.ts';
import { mosquittoPasswordHash, writeBrokerFiles } from '../../controller/broker-auth.ts';
import { Controller } from '../../controller/service.ts';
import { IDENTITY_FILE } from '../../provisioning/identity.ts';
import { loadAgentConfig, PROVISIONED_FILE, PROVISIONING_DIR, type ProvisionedRecord } from '../../provisioning/provisioned.ts';
import { REPO_ROOT, startAgent } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { stopProcess, track } from '../helpers/proc.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');
const BRANCHLINE = path.join(REPO_ROOT, 'agent', 'cli.ts');
const CONTROLLER_PASSWORD = 'controller-test-secret';

function run(file: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { cwd: REPO_ROOT, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function connect(url: string, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

/** Publishes at QoS 1 and returns the PUBACK reason code (0 delivered, 135 not authorized). */
function publishReason(c: MqttClient, topic: string, payload: string): Promise<number> {
  return new Promise((resolve, reject) => {
    c.publish(topic, payload, { qos: 1 }, (err, packet) => {
      const code = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? (err as { code?: number } | undefined)?.code;
      if (typeof code === 'number') resolve(code);
      else if (err) reject(err);
      else resolve(0);
    });
  });
}

describe('zero-touch claim against a real Mosquitto with the generated ACL', { timeout: 180_000 }, () => {
  let dir: string;
  let broker: MosquittoHandle;
  let controller: Controller;
  let observer: MqttClient;
  const seen: string[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'branchline-claim-'));
    const brokerDir = path.join(dir, 'broker');
    // The controller rewrites these at start and on every decision; the broker needs
    // them before it starts, as on a real install.
    writeBrokerFiles(brokerDir, { controller: { username: 'controller', passwordHash: mosquittoPasswordHash(CONTROLLER_PASSWORD) }, sites: [] });
    const port = await freeUdpTcpPort();
    // `user root`: the suite runs as root and Mosquitto would otherwise drop to the
    // mosquitto user, who cannot read files the test (standing in for the controller) owns.
    broker = await startMosquitto({ port, extraConfig: ['user root', `password_file ${path.join(brokerDir, 'passwd')}`, `acl_file ${path.join(brokerDir, 'acl')}`] });
    const reload = path.join(dir, 'reload.sh');
    writeFileSync(reload, `#!/bin/sh\nkill -HUP "$(cat ${path.join(dir, 'broker.pid')})"\n`, { mode: 0o755 });
    writeFileSync(path.join(dir, 'broker.pid'), String(broker.pid()));
    controller = new Controller({
      broker: broker.url,
      stateDir: path.join(dir, 'controller'),
      id: 'ctl-claim',
      username: 'controller',
      password: CONTROLLER_PASSWORD,
      brokerFiles: { dir: brokerDir, reloadCommand: reload },
      logger: createLogger('silent'),
    });
    await controller.start(15_000);
    observer = await connect(broker.url, { clientId: 'observer', username: 'controller', password: CONTROLLER_PASSWORD });
    observer.on('message', (topic) => seen.push(topic));
    await observer.subscribeAsync(`${ROOT}/site/#`, { qos: 1 });
  });

  after(async () => {
    observer?.end(true);
    await controller?.stop();
    await broker?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ctl = (args: string[]) => run(BRANCHCTL, [...args, '--broker', broker.url, '--username', 'controller', '--password', CONTROLLER_PASSWORD, '--json']);

  function deviceConfig(name: string, token: string): { file: string; stateDir: string } {
    const stateDir = path.join(dir, name, 'state');
    const file = path.join(dir, name, 'config.yaml');
    const config = {
      site: { id: 'unprovisioned' },
      state_dir: stateDir,
      log: { level: 'info' },
      sip: { domain: 'factory.local', udp: '127.0.0.1:5060', tcp: '127.0.0.1:5060' },
      extensions: [],
      provisioning: { claim: { url: broker.url, token, retry: 0.3 } },
    };
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, YAML.stringify(config));
    return { file, stateDir };
  }

  test('a claimed appliance gets its site, config and broker login, and runs as that site', async () => {
    const token = JSON.parse((await ctl(['claim', 'token', '--site', 'site-a'])).stdout) as { token: string; site: string };
    assert.equal(token.site, 'site-a');
    const device = deviceConfig('box-a', token.token);
    const child = spawn(process.execPath, [BRANCHLINE, 'provision', '--config', device.file, '--timeout', '60'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));

    // The claim shows up pending; nothing is granted before an operator decides.
    let serial = '';
    for (let i = 0; i < 150 && !serial && child.exitCode === null; i++) {
      serial = (await controller.claims.store.claims()).find((c) => c.site === 'site-a')?.serial ?? '';
      if (!serial) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(serial, /^BL-[0-9A-F]{12}$/, `no claim arrived; device said:\n${out}`);
    const list = JSON.parse((await ctl(['claim', 'list'])).stdout) as Array<{ serial: string; status: string; site: string; hardware: { arch: string } }>;
    assert.deepEqual(list.map((c) => [c.serial, c.status, c.site, c.hardware.arch]), [[serial, 'pending', 'site-a', process.arch]]);
    const identity = path.join(device.stateDir, PROVISIONING_DIR, IDENTITY_FILE);
    assert.equal(statSync(identity).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(identity, 'utf8')).serial, serial);

    const siteConfig = path.join(dir, 'site-a.yaml');
    writeFileSync(siteConfig, YAML.stringify({ sip: { domain: 'site-a.example' }, extensions: [{ number: '201', password: 'secret201' }] }));
    const approved = await ctl(['claim', 'approve', serial, '--file', siteConfig]);
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(await exited, 0, out);
    assert.match(out, new RegExp(`provisioned: appliance ${serial} is site site-a`));

    const grantFile = path.join(device.stateDir, PROVISIONING_DIR, PROVISIONED_FILE);
    assert.equal(statSync(grantFile).mode & 0o777, 0o600);
    const record = JSON.parse(readFileSync(grantFile, 'utf8')) as ProvisionedRecord;
    assert.equal(record.site, 'site-a');
    assert.equal(record.grant.mqtt.username, 'site-a');
    assert.ok(record.grant.mqtt.password.length >= 24);
    // The password never travels or lands in a log in the clear.
    assert.ok(!out.includes(record.grant.mqtt.password));
    const effective = loadAgentConfig(device.file);
    assert.equal(effective.site.id, 'site-a');
    assert.equal(effective.sip.domain, 'site-a.example');
    assert.deepEqual(effective.extensions.map((e) => e.number), ['201']);
    assert.equal(effective.mqtt.url, broker.url);

    // Run again, it knows it is done.
    const again = await run(BRANCHLINE, ['provision', '--config', device.file]);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /already provisioned/);

    // The appliance starts as site-a through the broker login it was given.
    const sipPort = await freeUdpTcpPort();
    const agent = await startAgent({
      extensions: [],
      stateDir: device.stateDir,
      udpPort: sipPort,
      tcpPort: sipPort,
      extraConfig: { site: { id: 'unprovisioned' }, provisioning: { claim: { url: broker.url, token: token.token } } },
    });
    try {
      let state: string | undefined;
      for (let i = 0; i < 100 && state !== 'online'; i++) {
        state = (await controller.store.sites()).find((s) => s.site === 'site-a')?.state;
        if (state !== 'online') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(state, 'online', 'the appliance did not come online as site-a');
    } finally {
      await agent.cleanup();
    }

    // The broker keeps site-a to its own topics.
    const siteA = await connect(broker.url, { clientId: 'site-a-probe', username: 'site-a', password: record.grant.mqtt.password });
    try {
      seen.length = 0;
      assert.equal(await publishReason(siteA, `${ROOT}/site/site-a/up/events`, '{}'), 0);
      assert.equal(await publishReason(siteA, `${ROOT}/site/site-b/up/events`, '{}'), 135, 'site-a published under site-b');
      assert.equal(await publishReason(siteA, `${ROOT}/site/site-b/state`, '{}'), 135);
      assert.equal(await publishReason(siteA, `${ROOT}/site/site-a/config/desired`, '{}'), 135, 'a site cannot write its own desired config');
      // Mosquitto grants the subscription but delivers only what the ACL lets it read.
      const got: string[] = [];
      siteA.on('message', (topic) => got.push(topic));
      await siteA.subscribeAsync([`${ROOT}/site/site-b/cmd`, `${ROOT}/site/site-a/cmd`], { qos: 1 });
      await observer.publishAsync(`${ROOT}/site/site-b/cmd`, '{}', { qos: 1 });
      await observer.publishAsync(`${ROOT}/site/site-a/cmd`, '{}', { qos: 1 });
      // Delivered in publish order: once site-a's own command is here, site-b's would have come first.
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got, [`${ROOT}/site/site-a/cmd`], 'site-a may read its own commands and not site-b\'s');
      assert.deepEqual(seen.filter((t) => t.includes('/up/') || t.endsWith('/state')), [`${ROOT}/site/site-a/up/events`]);
    } finally {
      siteA.end(true);
    }
    // A wrong password is refused; an anonymous client cannot publish a site's topics.
    await assert.rejects(connect(broker.url, { clientId: 'x', username: 'site-a', password: 'wrong' }));
    const anon = await connect(broker.url, { clientId: 'anon' });
    try {
      assert.equal(await publishReason(anon, `${ROOT}/site/site-a/up/events`, '{}'), 135);
    } finally {
      anon.end(true);
    }
    await stopProcess(child, { graceMs: 1000 });
  });

  test('an unknown token is refused at once; a rejected appliance is told why', async () => {
    const bogus = deviceConfig('box-bogus', 'not-a-real-token');
    const refused = await run(BRANCHLINE, ['provision', '--config', bogus.file, '--timeout', '20']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /unknown claim token/);

    const token = JSON.parse((await ctl(['claim', 'token', '--site', 'site-c'])).stdout) as { token: string };
    const device = deviceConfig('box-c', token.token);
    const child = spawn(process.execPath, [BRANCHLINE, 'provision', '--config', device.file, '--timeout', '60'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    track(child);
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
    let serial = '';
    for (let i = 0; i < 150 && !serial && child.exitCode === null; i++) {
      serial = (await controller.claims.store.claims()).find((c) => c.site === 'site-c')?.serial ?? '';
      if (!serial) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(serial, 'no claim for site-c');
    const rejected = await ctl(['claim', 'reject', serial, '--reason', 'not our box']);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.equal(await exited, 1);
    assert.match(err, /rejected the claim .*not our box/);
    // The token is spent: another box cannot reuse it.
    const thief = deviceConfig('box-thief', token.token);
    const reuse = await run(BRANCHLINE, ['provision', '--config', thief.file, '--timeout', '20']);
    assert.equal(reuse.code, 1);
    assert.match(reuse.stderr, /already used/);
  });
});
