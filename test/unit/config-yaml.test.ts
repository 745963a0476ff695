// The config file's YAML layer (agent/config/load.ts): YAML 1.2 core schema through
// js-yaml, with syntax problems reported as config errors that name the line.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../agent/config/load.ts';

function fileWith(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'bl-yaml-')), 'agent.yaml');
  writeFileSync(file, text);
  return file;
}

const base = `site:
  id: yaml-test
state_dir: ./state
sip:
  domain: branch.test
  udp: 127.0.0.1:5060
  tcp: 127.0.0.1:5060
`;

function problemsOf(text: string): string[] {
  try {
    loadConfig(fileWith(text));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.key}: ${p.reason}`);
  }
  return [];
}

test('a key given twice is a config error naming the line, not a silent overwrite', () => {
  const [problem] = problemsOf(`${base}extensions:\n  - number: "1001"\n    password: a\n    password: b\n`);
  assert.match(problem ?? '', /YAML syntax: duplicated mapping key \(line 11, column 5\)/);
});

test('YAML 1.2 core schema: a date-like or yes/no value stays what the schema expects', () => {
  const config = loadConfig(fileWith(`${base}extensions:\n  - number: "1001"\n    name: 2026-11-22\n    password: true-2026-11-22\n`));
  assert.equal(config.extensions[0]?.name, '2026-11-22', 'no Date object from a date-like name');
  assert.equal(config.extensions[0]?.password, 'true-2026-11-22');
  assert.ok(problemsOf(`${base}extensions:\n  - number: "1001"\n    password: yes\n`).some((p) => p.startsWith('extensions[0].password')), 'yes is a string in YAML 1.2, too short for a password');
  // An unquoted number is an integer in YAML 1.2, and the schema says which keys take one.
  assert.ok(problemsOf(`${base}extensions:\n  - number: 1001\n    password: secret\n`).some((p) => p.startsWith('extensions[0].number')));
});

test('10,000 extensions load, each with its own number', () => {
  let text = `${base}extensions:\n`;
  for (let i = 0; i < 10_000; i++) text += `  - number: "${20000 + i}"\n    password: pw-${i}\n`;
  const config = loadConfig(fileWith(text));
  assert.equal(config.extensions.length, 10_000);
  assert.equal(config.extensions[9999]?.number, '29999');
});
