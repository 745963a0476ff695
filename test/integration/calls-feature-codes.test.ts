// Feature codes dialled from a phone, end to end: the agent answers the code itself,
// plays the confirmation and hangs up, and the change is what the next caller meets:
// *78 (do not disturb) makes the extension busy (486) even with no phone registered;
// *79 turns it off again (480: nobody registered). The change survives a restart.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { assertAllSucceeded, logValues, runSipp, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS = [
  { number: '1001', name: 'Alice', password: 'alice-secret' },
  { number: '1002', name: 'Bob', password: 'bob-secret' },
];

describe('feature codes dialled from a phone', () => {
  let agent: AgentHandle;
  let dir: string;

  const start = (over: { stateDir?: string; udpPort?: number; tcpPort?: number } = {}): Promise<AgentHandle> =>
    startAgent({
      extensions: EXTENSIONS,
      extraConfig: { ...SIPP_AGENT_CONFIG, dialplan: { ring_timeout: 5 }, media: { bind_address: '127.0.0.1' } },
      ...over,
    });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-feature-codes-'));
    await mkdir(path.join(dir, 'state'));
    agent = await start({ stateDir: path.join(dir, 'state') });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  async function dialFeature(code: string): Promise<string[]> {
    const file = path.join(dir, `feature-${code.replace('*', 'star')}.csv`);
    await writeFile(file, `SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];${code}\n`);
    const t0 = Date.now();
    const r = await runSipp({ scenario: 'b2bua-uac-feature', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `${code}@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    // The confirmation tone is 600 ms long; the BYE follows it, not the answer.
    assert.ok(Date.now() - t0 >= 600, 'the agent hangs up after the confirmation tone');
    return logValues(r, 'bye_reason');
  }

  async function bobCallsAlice(): Promise<string> {
    const file = path.join(dir, 'bob-calls-alice.csv');
    await writeFile(file, 'SEQUENTIAL\n1002;[authentication username=1002 password=bob-secret];1001\n');
    const r = await runSipp({ scenario: 'b2bua-uac-final', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `1001@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    const [final] = logValues(r, 'final');
    assert.ok(final !== undefined, 'the caller logged a final response');
    return final;
  }

  test('*78 turns do-not-disturb on: the agent confirms and hangs up, and callers then get 486', async () => {
    assert.equal(await bobCallsAlice(), '480', 'before: nobody registered for 1001');
    await dialFeature('*78');
    const applied = await agent.waitForLog((l) => l['event'] === 'feature.applied' && l['feature'] === 'dnd-on', 5000);
    assert.equal(applied['extension'], '1001');
    assert.equal(await bobCallsAlice(), '486');
  });

  test('do-not-disturb survives a restart, and *79 turns it off', async () => {
    assert.equal(await agent.stop(), 0);
    await agent.cleanup();
    agent = await start({ stateDir: agent.stateDir, udpPort: agent.udpPort, tcpPort: agent.tcpPort });
    assert.equal(await bobCallsAlice(), '486', 'still busy after the restart');
    await dialFeature('*79');
    assert.equal(await bobCallsAlice(), '480');
  });

  test('a feature code that needs a number and has none is refused, and changes nothing', async () => {
    const file = path.join(dir, 'forward-without-number.csv');
    await writeFile(file, 'SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];*72\n');
    const r = await runSipp({ scenario: 'b2bua-uac-final', remote: `127.0.0.1:${agent.udpPort}`, usersFile: file, calls: 1, authUri: `*72@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
    assertAllSucceeded(r, 1, { allowRetransmissions: true });
    assert.deepEqual(logValues(r, 'final'), ['484']);
    assert.equal(await bobCallsAlice(), '480');
  });
});
