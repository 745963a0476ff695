// The update as a controller job over a real Mosquitto: `branchctl command --name
// firmware.update` makes the running agent download a bundle over HTTP and run the
// same install as `branchline update` into its slot tree; the answer lists every step,
// each step reaches the controller as a `firmware.hook` event (through the outbox, so
// across the restart too), the agent hands over to the new slot by exiting, and the
// post-boot verify and commit run by the service manager are reported the same way.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../agent/log/logger.ts';
import { Controller } from '../../controller/service.ts';
import { noAgentCalls } from '../../firmware-hooks/probes/active-calls.ts';
import { SlotTree } from '../../image/slots/tree.ts';
import { makeSyntheticBundle, testKey } from '../../image/testkit/synthetic.ts';
import { installUpdate } from '../../image/update.ts';
import { keyRingFromFiles } from '../../image/bundle/signing.ts';
import { FIRMWARE_EVENT } from '../../image/journal-reporter.ts';
import { REPO_ROOT, startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');
const BRANCHLINE = path.join(REPO_ROOT, 'agent', 'cli.ts');

function run(file: string, args: string[], timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { cwd: REPO_ROOT, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

interface HookEvent {
  hook: string;
  status: string;
  version: string | null;
  detail: string;
}

describe('firmware.update as a controller job over MQTT', { timeout: 180_000 }, () => {
  let dir: string;
  let broker: MosquittoHandle;
  let controller: Controller;
  let server: http.Server;
  let serverPort: number;
  let slots: string;
  const bundles: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'branchline-update-job-'));
    const release = testKey(dir, 'release');
    const stranger = testKey(dir, 'stranger');
    bundles['0.1.0'] = await makeSyntheticBundle(dir, { version: '0.1.0', signingKey: release.privateKey, trusted: [release.publicFile] });
    bundles['0.2.0'] = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: release.privateKey, trusted: [release.publicFile] });
    bundles['forged'] = await makeSyntheticBundle(dir, { version: '0.2.0', signingKey: stranger.privateKey, trusted: [stranger.publicFile] });
    slots = path.join(dir, 'slots');
    // The factory flash: slot a runs 0.1.0 and trusts the release key.
    await installUpdate({ tree: SlotTree.open(slots, { create: true }), bundle: bundles['0.1.0'], keys: keyRingFromFiles([release.publicFile]), calls: noAgentCalls, callDeadlineMs: 0, stateDir: null });
    server = http.createServer((req, res) => {
      const file = bundles[(req.url ?? '').replace(/^\//, '')];
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Length': statSync(file).size });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverPort = (server.address() as AddressInfo).port;
    broker = await startMosquitto();
    controller = new Controller({ broker: broker.url, stateDir: path.join(dir, 'controller'), id: 'ctl-update', logger: createLogger('silent') });
    await controller.start(15_000);
  });

  after(async () => {
    await controller?.stop();
    await broker?.cleanup();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const command = (args: object) =>
    run(BRANCHCTL, ['command', '--broker', broker.url, '--site', 'test-site', '--name', 'firmware.update', '--args', JSON.stringify(args), '--timeout', '60', '--json']);

  async function hookEvents(predicate: (e: HookEvent[]) => boolean, timeoutMs = 20_000): Promise<HookEvent[]> {
    const deadline = Date.now() + timeoutMs;
    let events: HookEvent[] = [];
    while (Date.now() < deadline) {
      const rows = await controller.store.messages('test-site', 'events', { limit: 1000 });
      events = rows.filter((r) => r.type === FIRMWARE_EVENT).map((r) => r.data as HookEvent);
      if (predicate(events)) return events;
      await new Promise((r) => setTimeout(r, 100));
    }
    return events;
  }

  test('a refused bundle, then an update that the new slot commits, every step reported upstream', async () => {
    const stateDir = path.join(dir, 'agent-state');
    const sipPort = await freeUdpTcpPort();
    const config = { mqtt: { url: broker.url }, firmware: { slots, report_interval: 0.2 } };
    let agent: AgentHandle = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }], stateDir, udpPort: sipPort, tcpPort: sipPort, extraConfig: config });
    try {
      await agent.waitForLog((l) => l['event'] === 'mqtt.connected', 10_000);

      // Signed by a key the running slot does not trust: refused at install-check.
      const forged = await command({ url: `http://127.0.0.1:${serverPort}/forged` });
      assert.equal(forged.code, 1);
      assert.match(forged.stderr, /install-check: .*not trusted/);
      assert.match(forged.stderr, /EHOOK_FAILED/);
      const refused = await hookEvents((e) => e.some((x) => x.hook === 'install-check' && x.status === 'failed'));
      assert.ok(refused.some((x) => x.hook === 'install-check' && x.status === 'failed' && /not trusted/.test(x.detail)), JSON.stringify(refused));

      // Bad arguments get a clear error, nothing runs.
      const bad = await command({ path: 'relative.bundle' });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /"path" must be an absolute path/);

      const good = await command({ url: `http://127.0.0.1:${serverPort}/0.2.0` });
      assert.equal(good.code, 0, good.stderr);
      const result = JSON.parse(good.stdout) as { status: string; version: string; slot: string; restarting: boolean; previous: { slot: string; version: string }; hooks: HookEvent[] };
      assert.equal(result.status, 'selected');
      assert.equal(result.version, '0.2.0');
      assert.equal(result.slot, 'b');
      assert.deepEqual(result.previous, { slot: 'a', version: '0.1.0' });
      assert.equal(result.restarting, true);
      assert.deepEqual(result.hooks.map((h) => `${h.hook}:${h.status}`), ['install-check:ok', 'pre-install:ok', 'install:ok', 'post-install:ok', 'pre-reboot:ok', 'switch:ok']);

      // The agent hands over to the new slot by exiting cleanly.
      const deadline = Date.now() + 10_000;
      while (agent.running() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(agent.running(), false, 'the agent did not exit after selecting the new slot');
      assert.equal(await agent.stop(), 0);
      const view = JSON.parse((await run(BRANCHLINE, ['slots', '--slots', slots, '--json'])).stdout) as { active: string; trial: { slot: string } | null };
      assert.equal(view.active, 'b');
      assert.equal(view.trial?.slot, 'b');

      // What the service manager does next: the boot step, the agent, post-boot verify.
      assert.equal((await run(BRANCHLINE, ['slots', 'boot', '--slots', slots])).code, 0);
      await agent.cleanup();
      agent = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }], stateDir, udpPort: sipPort, tcpPort: sipPort, extraConfig: config });
      const verify = await run(BRANCHLINE, ['slots', 'verify', '--slots', slots, '--config', agent.configPath, '--deadline', '20']);
      assert.equal(verify.code, 0, verify.stderr);
      assert.match(verify.stderr, /committed slot b \(0\.2\.0\)/);

      const events = await hookEvents((e) => e.some((x) => x.hook === 'commit' && x.version === '0.2.0'));
      const story = events.filter((e) => e.version === '0.2.0').map((e) => `${e.hook}:${e.status}`);
      for (const step of ['install-check:ok', 'pre-install:ok', 'install:ok', 'post-install:ok', 'pre-reboot:ok', 'switch:ok', 'boot:ok', 'post-boot-verify:ok', 'commit:ok']) {
        assert.ok(story.includes(step), `${step} not reported upstream; got ${story.join(', ')}`);
      }
      // Each journal line reaches the controller once, though the agent restarted.
      assert.equal(new Set(events.map((e) => JSON.stringify(e))).size, events.length);
    } finally {
      await agent.cleanup();
    }
  });
});
