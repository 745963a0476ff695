import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { EventBacklog } from '../../agent/events/backlog.ts';
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

test('a backlog keeps the named events until taken, in order, then stops recording', () => {
  const bus = new EventBus(createLogger('silent'));
  const backlog = new EventBacklog(bus, ['registration.added', 'security.lockout']);
  bus.emit('registration.added', { extension: '1001', contact: 'sip:1001@10.0.0.2', expiresAt: 1, source: 'udp:10.0.0.2:5060' });
  bus.emit('registration.refreshed', { extension: '1001', contact: 'sip:1001@10.0.0.2', expiresAt: 2, source: 'udp:10.0.0.2:5060' });
  bus.emit('security.lockout', { source: '10.0.0.9', failures: 5, until: 3 });
  // A late subscriber attaches and takes the backlog in the same turn: nothing twice, nothing missed.
  const live: string[] = [];
  bus.on('registration.added', (e) => live.push(e.extension));
  const early = backlog.take();
  assert.deepEqual(early.map((e) => e.name), ['registration.added', 'security.lockout']);
  bus.emit('registration.added', { extension: '1002', contact: 'sip:1002@10.0.0.3', expiresAt: 4, source: 'udp:10.0.0.3:5060' });
  assert.deepEqual(live, ['1002']);
  assert.deepEqual(backlog.take(), [], 'no longer recording');
});
