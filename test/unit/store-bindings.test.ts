// Restoring registrar bindings from a real SQLite file (agent/store/bindings.ts): every
// field survives the round trip, bindings come back by extension and oldest first,
// and expired ones are told apart.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadBindings, upsertBinding, type Binding } from '../../agent/store/bindings.ts';
import { Database } from '../../agent/store/db.ts';
import { syncExtensions } from '../../agent/store/extensions.ts';
import { migrate } from '../../agent/store/migrations.ts';

test('bindings are restored field for field, by extension and oldest first', async () => {
  const db = await Database.open(path.join(mkdtempSync(path.join(tmpdir(), 'bl-bind-')), 'store.sqlite'));
  try {
    await migrate(db);
    const ext = (number: string) => ({ number, name: null, realm: 'r', ha1_md5: 'a'.repeat(32), ha1_sha256: 'b'.repeat(64) });
    await syncExtensions(db, [ext('1001'), ext('1002')]);
    const now = Date.now();
    const full: Binding = {
      extension: '1002',
      contact: 'sip:1002@[2001:db8::1]:5070;transport=tcp;x="a,b"',
      instance: '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
      callId: "it's-1@host",
      cseq: 4_000_000_000,
      expiresAt: now + 3_600_000,
      q: 0.7,
      source: 'tcp:[2001:db8::1]:5070',
      path: ['<sip:edge.example.com;lr>', '<sip:p2.example.com;lr;ob>'],
      userAgent: 'Desk Phone ünicode "quoted"',
      registeredAt: now - 5_000,
    };
    const plain = (extension: string, contact: string, registeredAt: number, expiresAt = now + 60_000): Binding => ({
      extension, contact, instance: null, callId: `c-${contact}`, cseq: 1, expiresAt, q: null, source: 'udp:10.0.0.9:5060', path: [], userAgent: null, registeredAt,
    });
    await db.transaction([
      upsertBinding(plain('1002', 'sip:newer@h', now - 1_000)),
      upsertBinding(full),
      upsertBinding(plain('1001', 'sip:b@h', now - 2_000)),
      upsertBinding(plain('1001', 'sip:a@h', now - 9_000)),
      upsertBinding(plain('1001', 'sip:gone@h', now - 20_000, now - 1)),
    ]);
    const { live, expired } = await loadBindings(db, now);
    assert.deepEqual(live.map((b) => `${b.extension} ${b.contact}`), ['1001 sip:a@h', '1001 sip:b@h', `1002 ${full.contact}`, '1002 sip:newer@h']);
    assert.deepEqual(live[2], full);
    assert.deepEqual(expired.map((b) => b.contact), ['sip:gone@h']);
  } finally {
    await db.close();
  }
});

test('an empty table restores nothing', async () => {
  const db = await Database.open(path.join(mkdtempSync(path.join(tmpdir(), 'bl-bind-')), 'store.sqlite'));
  try {
    await migrate(db);
    assert.deepEqual(await loadBindings(db, Date.now()), { live: [], expired: [] });
  } finally {
    await db.close();
  }
});
