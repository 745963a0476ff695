// A start that fails says why on stderr, whatever log.level is: the agent's log goes
// to stdout (and may be silenced), and a supervisor or a test helper that sees only
// "exit 1" with nothing on stderr has nothing to go on. The failure here is a SIP
// port already in use, the usual one on a shared machine.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { AgentStartError, startAgent } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';

test('an agent whose SIP port is taken exits 1 and says why on stderr, even with log.level silent', async (t) => {
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const taken = holder.address().port;
  await assert.rejects(
    startAgent({ extensions: [{ number: '1001', password: 'start-failure-1001' }], logLevel: 'silent', udpPort: taken, tcpPort: await freeUdpTcpPort() }),
    (err: unknown) => {
      assert.ok(err instanceof AgentStartError, String(err));
      assert.match(err.stderr, new RegExp(`agent failed to start: .*127\\.0\\.0\\.1:${taken}.*EADDRINUSE`));
      return true;
    },
  );
});
