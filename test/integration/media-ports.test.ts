// RTP/RTCP port pairs from a configured range: even RTP port, RTCP on the next,
// ports held by someone else skipped, exhaustion reported with a typed error.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { PortsExhaustedError } from '../../agent/media/errors.ts';
import { PortPool, type SocketPair } from '../../agent/media/port-pool.ts';

const HOST = '127.0.0.1';

function bindUdp(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, HOST, () => resolve(s));
  });
}

/** An even base with `count` consecutive free ports after it (checked by binding them). */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + 2 * Math.floor(Math.random() * 10000);
    const sockets = await Promise.all(Array.from({ length: count }, (_, i) => bindUdp(base + i)));
    const ok = sockets.every((s) => s !== undefined);
    await Promise.all(sockets.map((s) => (s ? new Promise<void>((r) => s.close(() => r())) : undefined)));
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free UDP ports found in 50 tries`);
}

test('pairs come from the range: even RTP, RTCP + 1, busy ports skipped, then exhausted', async (t) => {
  const base = await freeRange(8);
  const pool = new PortPool(HOST, { min: base + 1, max: base + 7 }); // min rounds up to base + 2
  assert.equal(pool.capacity, 3); // (base+2, +3), (+4, +5), (+6, +7)
  const squatter = await bindUdp(base + 5); // someone else holds an RTCP port
  t.after(() => squatter?.close());
  const pairs: SocketPair[] = [];
  t.after(() => pairs.forEach((p) => pool.release(p)));
  pairs.push(await pool.allocate());
  pairs.push(await pool.allocate());
  assert.deepEqual(
    pairs.map((p) => [p.port, p.rtp.address().port, p.rtcp.address().port]),
    [
      [base + 2, base + 2, base + 3],
      [base + 6, base + 6, base + 7],
    ],
  );
  await assert.rejects(pool.allocate(), (e: unknown) => e instanceof PortsExhaustedError && e.code === 'EPORTS');
  assert.equal(pool.inUse, 2);
  // A released pair is free again.
  pool.release(pairs.shift()!);
  const again = await pool.allocate();
  pairs.push(again);
  assert.equal(again.port, base + 2);
});

test('without a range the OS picks, still an even port with RTCP on the next', async (t) => {
  const pool = new PortPool(HOST);
  const pairs = await Promise.all([pool.allocate(), pool.allocate(), pool.allocate()]);
  t.after(() => pairs.forEach((p) => pool.release(p)));
  for (const p of pairs) {
    assert.equal(p.port % 2, 0);
    assert.equal(p.rtcp.address().port, p.port + 1);
  }
  assert.equal(new Set(pairs.map((p) => p.port)).size, 3);
});
