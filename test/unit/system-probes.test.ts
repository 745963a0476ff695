import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { cpuTimes, diskUsage, interfaceCounters, loadBetween, memoryFacts, networkInterfaces, temperatures } from '../../agent/health/system-probes.ts';
import { sampleSystem } from '../../agent/health/telemetry.ts';

test('interfaces: loopback with its addresses and a state read from the kernel', async () => {
  const list = await networkInterfaces();
  const lo = list.find((i) => i.name === 'lo');
  assert.ok(lo, `no lo among ${list.map((i) => i.name).join(', ')}`);
  assert.equal(lo.ip4, '127.0.0.1');
  assert.match(lo.state, /^(up|down|unknown|dormant|lowerlayerdown|notpresent|testing)$/);
  assert.equal(new Set(list.map((i) => i.name)).size, list.length, 'an interface listed twice');
});

test('disks: the root filesystem once, with df-like figures', async () => {
  const disks = await diskUsage();
  const root = disks.find((d) => d.mount === '/');
  assert.ok(root, `no / among ${JSON.stringify(disks)}`);
  assert.ok(root.size > 0 && root.used >= 0 && root.used <= root.size);
  assert.ok(root.use_pct >= 0 && root.use_pct <= 100);
  assert.equal(new Set(disks.map((d) => d.fs)).size, disks.length, 'a device listed twice (bind mounts)');
});

test('temperatures: numbers or nulls, never NaN', async () => {
  const t = await temperatures();
  for (const v of [t.main, t.max, ...t.cores]) assert.ok(v === null || Number.isFinite(v));
  if (t.main !== null) assert.ok(t.max !== null && t.max >= t.main);
});

test('a telemetry sample carries interface counters for the interfaces found', async () => {
  const sample = await sampleSystem();
  const lo = sample.interfaces.find((i) => i.name === 'lo');
  assert.ok(lo);
  assert.equal(typeof lo.rx_bytes, 'number');
  assert.ok(sample.disks.length > 0);
  assert.ok(sample.cpu.cores !== null && sample.cpu.cores > 0);
});

test('CPU load is the busy share between two samples', () => {
  assert.equal(loadBetween({ idle: 100, total: 200 }, { idle: 175, total: 300 }), 25);
  assert.equal(loadBetween({ idle: 100, total: 200 }, { idle: 100, total: 200 }), 0, 'no time passed: 0, not NaN');
  const now = cpuTimes();
  const sinceBoot = loadBetween(undefined, now);
  assert.ok(now.cores > 0 && sinceBoot >= 0 && sinceBoot <= 100);
});

test('interface counters come from the kernel and grow with traffic', async () => {
  const before = await interfaceCounters('lo');
  assert.equal(typeof before.rx_bytes, 'number');
  const dgram = await import('node:dgram');
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.send(Buffer.alloc(1000), 9, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  socket.close();
  const after = await interfaceCounters('lo');
  assert.ok((after.tx_bytes ?? 0) >= (before.tx_bytes ?? 0) + 1000);
  assert.deepEqual(await interfaceCounters('no-such-interface'), { rx_bytes: null, tx_bytes: null });
});

test('memory: total and MemAvailable from /proc/meminfo, used is the rest (what systeminformation reported)', async () => {
  const m = await memoryFacts();
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(info)?.[1]) * 1024;
  assert.equal(m.total, kb('MemTotal'));
  assert.ok(m.available > 0 && m.available <= m.total);
  assert.equal(m.used, m.total - m.available);
  const sample = await sampleSystem();
  assert.equal(sample.memory?.total, m.total);
});
