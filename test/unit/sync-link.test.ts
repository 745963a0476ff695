// What the MQTT link says about its broker: a user:password written into the URL
// never reaches a message or a log line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../agent/log/logger.ts';
import { brokerUrlForLogs, MqttLink } from '../../agent/sync/link.ts';

test('a link that is down names its broker without the credentials in its URL', async () => {
  const link = new MqttLink({ url: 'mqtt://site-a:s3cret-pw@127.0.0.1:1883', clientId: 'x', protocolVersion: 5, keepalive: 10, reconnectPeriodMs: 1000, connectTimeoutMs: 1000, logger: createLogger('silent') });
  await assert.rejects(link.publish('t', Buffer.from('{}')), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ENOTCONNECTED');
    assert.equal(err.message, 'MQTT link to mqtt://127.0.0.1:1883 is down');
    return true;
  });
  assert.equal(brokerUrlForLogs('mqtts://fleet.example.com:8883'), 'mqtts://fleet.example.com:8883');
});
