import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diskUsage, networkInterfaces, temperatures } from '../../agent/health/system-probes.ts';
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
