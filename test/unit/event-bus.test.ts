import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { EventBus } from '../../agent/events/bus.ts';
import { createLogger } from '../../agent/log/logger.ts';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

test('a throwing listener is logged and does not stop the others', () => {
  const { lines, stream } = capture();
  const bus = new EventBus(createLogger('info', stream));
  const seen: string[] = [];
  bus.on('registration.removed', () => {
    throw new Error('boom');
  });
  bus.on('registration.removed', (e) => seen.push(e.contact));
  bus.emit('registration.removed', { extension: '1001', contact: 'sip:a@h', reason: 'expired' });
  assert.deepEqual(seen, ['sip:a@h']);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /event listener failed/);
});

test('unsubscribing removes the listener', () => {
  const bus = new EventBus(createLogger('silent'));
  let calls = 0;
  const off = bus.on('security.scanner', () => calls++);
  bus.emit('security.scanner', { source: '1.2.3.4', userAgent: 'friendly-scanner' });
  off();
  bus.emit('security.scanner', { source: '1.2.3.4', userAgent: 'friendly-scanner' });
  assert.equal(calls, 1);
  assert.equal(bus.listenerCount('security.scanner'), 0);
});

test('the logger redacts passwords and authorization wherever they appear', () => {
  const { lines, stream } = capture();
  const logger = createLogger('info', stream);
  logger.info({ password: 'p1', ext: { password: 'p2' }, extensions: [{ password: 'p3' }], authorization: 'Digest x' }, 'x');
  assert.ok(!/p1|p2|p3|Digest x/.test(lines.join('')), lines.join(''));
});
