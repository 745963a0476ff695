import { Database } from './agent/store/db.ts';
import { GroupCommitter } from './agent/store/group-commit.ts';
import { migrate } from './agent/store/migrations.ts';
import { syncExtensions } from './agent/store/extensions.ts';
import { upsertBinding } from './agent/store/bindings.ts';
import { rmSync } from 'node:fs';
rmSync('/tmp/prof/gc.sqlite', { force: true });
const db = await Database.open('/tmp/prof/gc.sqlite'); await migrate(db);
await syncExtensions(db, Array.from({ length: 1000 }, (_, i) => ({ number: String(1000 + i), name: null, realm: 'r', ha1_md5: 'a', ha1_sha256: 'b' })));
const gc = new GroupCommitter(db);
for (const concurrency of [1, 10, 100]) {
  const n = 5000;
  const c0 = process.cpuUsage(); const t0 = performance.now();
  let i = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (i < n) { const k = i++; await gc.submit([upsertBinding({ extension: String(1000 + (k % 1000)), contact: `sip:${k % 1000}@h`, instance: null, callId: 'c' + k, cseq: k, expiresAt: Date.now() + 1e6, q: null, source: 'udp:1.2.3.4:5', path: [], userAgent: 'ua', registeredAt: 1 })]); }
  }));
  const c = process.cpuUsage(c0); const t = performance.now() - t0;
  console.log(`concurrency ${concurrency}: ${(n / t * 1000).toFixed(0)}/s, main-thread cpu ${((c.user + c.system) / n).toFixed(0)} µs/op, batches ${gc.stats.batches}`);
}
await db.close();
