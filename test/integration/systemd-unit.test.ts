// The service unit and the agent's side of it: the shipped units pass
// `systemd-analyze verify`, are hardened as docs/image.md says, and the agent sends
// READY=1 once it serves SIP, WATCHDOG=1 at half of WATCHDOG_USEC and STOPPING=1 on
// SIGTERM, through systemd-notify, to a NOTIFY_SOCKET this test listens on (a small
// python3 receiver that reads each datagram and closes the fds systemd-notify passes
// for its barrier, as systemd does).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { statusOf } from '../helpers/raw-sip.ts';
import { REPO_ROOT, startAgent } from '../helpers/agent.ts';
import { stopProcess, track } from '../helpers/proc.ts';
import { optionsRequest, UdpPeer } from '../helpers/sip-client.ts';

const UNITS = ['branchline.service', 'branchline-provision.service'];

const RECEIVER = `
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            import array
            fds = array.array("i"); fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            for fd in fds:
                import os; os.close(fd)
    print(json.dumps({"t": time.monotonic(), "msg": msg.decode()}), flush=True)
`;

interface Received {
  t: number;
  msg: string;
}

describe('systemd unit and notification', { timeout: 90_000 }, () => {
  let dir: string;
  let receiver: ChildProcess;
  const received: Received[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'branchline-systemd-'));
    writeFileSync(path.join(dir, 'receiver.py'), RECEIVER);
    receiver = spawn('python3', [path.join(dir, 'receiver.py'), path.join(dir, 'notify.sock')], { stdio: ['ignore', 'pipe', 'inherit'] });
    track(receiver);
    let partial = '';
    await new Promise<void>((resolve, reject) => {
      receiver.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
      receiver.stdout?.setEncoding('utf8');
      receiver.stdout?.on('data', (d: string) => {
        partial += d;
        let nl: number;
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = JSON.parse(partial.slice(0, nl)) as Partial<Received> & { listening?: boolean };
          partial = partial.slice(nl + 1);
          if (line.listening) resolve();
          else received.push(line as Received);
        }
      });
    });
  });

  after(async () => {
    if (receiver) await stopProcess(receiver, { graceMs: 1000 });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the shipped units pass systemd-analyze verify', async () => {
    // The units name /opt/branchline; verify checks that each command exists, so the
    // test lays out the same paths under a temporary root and points the units there.
    const root = path.join(dir, 'root');
    const bin = path.join(root, 'opt/branchline/current/bin/branchline');
    mkdirSync(path.dirname(bin), { recursive: true });
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    const files = UNITS.map((u) => {
      const f = path.join(dir, u);
      writeFileSync(f, readFileSync(path.join(REPO_ROOT, 'image/files', u), 'utf8').replaceAll('/opt/branchline', path.join(root, 'opt/branchline')));
      return f;
    });
    const result = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile('systemd-analyze', ['verify', ...files], { cwd: dir }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` })),
    );
    assert.equal(result.code, 0, result.out);
    assert.equal(result.out.trim(), '', `systemd-analyze warned:\n${result.out}`);
  });

  test('the agent unit is Type=notify with a watchdog, and hardened', () => {
    const unit = readFileSync(path.join(REPO_ROOT, 'image/files/branchline.service'), 'utf8');
    const keys = new Map<string, string[]>();
    for (const line of unit.split('\n')) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) keys.set(m[1], [...(keys.get(m[1]) ?? []), m[2]]);
    }
    const one = (k: string) => keys.get(k)?.join(' ');
    assert.equal(one('Type'), 'notify');
    assert.equal(one('NotifyAccess'), 'all');
    assert.ok(Number(one('WatchdogSec')) > 0);
    assert.equal(one('User'), 'branchline');
    assert.equal(one('SupplementaryGroups'), 'dialout');
    assert.equal(one('StateDirectory'), 'branchline');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('NoNewPrivileges'), 'true');
    assert.match(one('UnsetEnvironment') ?? '', /\bNODE_OPTIONS\b/);
    assert.match(one('After') ?? '', /branchline-provision\.service/);
    assert.match(one('Environment') ?? '', /\bMALLOC_ARENA_MAX=2\b/);
  });

  test('READY=1 once SIP answers, WATCHDOG=1 at half the interval, STOPPING=1 on SIGTERM', async () => {
    received.length = 0;
    const agent = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }], env: { NOTIFY_SOCKET: path.join(dir, 'notify.sock'), WATCHDOG_USEC: '600000' } });
    try {
      const deadline = Date.now() + 10_000;
      while (!received.some((r) => r.msg.includes('READY=1')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const ready = received.find((r) => r.msg.includes('READY=1'));
      assert.ok(ready, `no READY=1; got ${JSON.stringify(received)}`);
      assert.match(ready.msg, /STATUS=site test-site: serving/);
      // Ready means serving: the agent logged agent.ready before it, and SIP answers.
      assert.ok(agent.logs().some((l) => l['event'] === 'agent.ready'));
      const peer = await UdpPeer.open();
      try {
        const res = await peer.exchange(optionsRequest({ user: '1001', domain: agent.domain, localPort: peer.port, host: peer.host, callId: 'notify-options', cseq: 1 }), agent.udpPort);
        assert.equal(statusOf(res ?? ''), 200);
      } finally {
        peer.close();
      }
      const pingDeadline = Date.now() + 5000;
      while (received.filter((r) => r.msg === 'WATCHDOG=1').length < 4 && Date.now() < pingDeadline) await new Promise((r) => setTimeout(r, 20));
      const pings = received.filter((r) => r.msg === 'WATCHDOG=1');
      assert.ok(pings.length >= 4, `expected 4 watchdog pings at 300 ms within 5 s, got ${pings.length}`);
      const gaps = pings.slice(1).map((p, i) => p.t - (pings[i] as Received).t);
      // A loaded machine only makes gaps longer: none may be short (no flood), and the
      // shortest shows the half interval (300 ms), not the full 600.
      for (const gap of gaps) assert.ok(gap > 0.15, `watchdog gap ${gap.toFixed(3)} s`);
      assert.ok(Math.min(...gaps) < 0.45, `watchdog gaps ${gaps.map((g) => g.toFixed(3)).join(', ')} s: not at half the interval`);
      assert.ok(!received.some((r) => r.msg.includes('STOPPING=1')));
      assert.equal(await agent.stop(), 0);
      const stopDeadline = Date.now() + 5000;
      while (!received.some((r) => r.msg.includes('STOPPING=1')) && Date.now() < stopDeadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(received.some((r) => r.msg.includes('STOPPING=1')), 'no STOPPING=1');
      const afterStop = received.length;
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(received.length, afterStop, 'the watchdog kept pinging after the stop');
    } finally {
      await agent.cleanup();
    }
  });
});
