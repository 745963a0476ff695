import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../agent/config/load.ts';

function write(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-config-'));
  const file = path.join(dir, 'agent.yaml');
  writeFileSync(file, text);
  return file;
}

function problemsOf(text: string): Array<{ key: string; reason: string }> {
  try {
    loadConfig(write(text));
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('the sample config loads with defaults filled in', () => {
  const config = loadConfig('config/sample.yaml');
  assert.equal(config.site.id, 'branch-01');
  assert.equal(config.sip.domain, 'branchline.local');
  assert.deepEqual(config.sip.udp, { host: '0.0.0.0', port: 5060 });
  assert.equal(config.extensions.length, 2);
  assert.equal(config.sip.registrar.min_expires, 60);
  assert.deepEqual(config.sip.auth.algorithms, ['MD5'], 'the sample serves phones that abort on SHA-256');
  assert.deepEqual(config.sip.timers, { t1: 500, t2: 4000, t4: 5000 });
  assert.equal(config.log.level, 'info');
  assert.equal(config.state_dir, path.resolve('data'));
});

test('state_dir is resolved against the config file folder', () => {
  const file = write('site: {id: a}\nstate_dir: state\nsip: {domain: d}\nextensions: []\n');
  assert.equal(loadConfig(file).state_dir, path.join(path.dirname(file), 'state'));
});

test('every error is reported at once, each naming its key and reason', () => {
  const problems = problemsOf(`
site: {id: "bad id!"}
sip:
  domain: example
  udp: not-an-address
  registrar: {min_expires: 0, bogus: 1}
extensions:
  - {number: "1001", password: "x"}
  - {number: "12a", password: "secret"}
`);
  const keys = problems.map((p) => p.key);
  assert.ok(keys.includes('site.id'), JSON.stringify(problems));
  assert.ok(keys.includes('sip.udp'));
  assert.ok(keys.includes('sip.registrar.min_expires'));
  assert.ok(keys.includes('sip.registrar.bogus'));
  assert.ok(keys.includes('extensions[0].password'));
  assert.ok(keys.includes('extensions[1].number'));
  const udp = problems.find((p) => p.key === 'sip.udp');
  assert.match(udp!.reason, /not-an-address.*host:port/);
  assert.equal(problems.find((p) => p.key === 'sip.registrar.bogus')!.reason, 'is not a known key');
});

test('missing required keys are named', () => {
  const keys = problemsOf('state_dir: x\n').map((p) => p.key).sort();
  assert.deepEqual(keys, ['extensions', 'sip', 'site']);
});

test('cross-field rules: duplicate extensions, expiry bounds, port range', () => {
  const problems = problemsOf(`
site: {id: a}
sip:
  domain: d
  tcp: 127.0.0.1:70000
  registrar: {min_expires: 600, max_expires: 300}
extensions:
  - {number: "1001", password: "secret"}
  - {number: "1001", password: "secret2"}
`);
  const byKey = new Map(problems.map((p) => [p.key, p.reason]));
  assert.match(byKey.get('sip.tcp') ?? '', /70000/);
  assert.match(byKey.get('sip.registrar.min_expires') ?? '', /greater than max_expires/);
  assert.match(byKey.get('extensions[1].number') ?? '', /already used by extensions\[0\]/);
});

test('a YAML syntax error and an unreadable file are config errors, not crashes', () => {
  assert.match(problemsOf('site: [unclosed\n')[0]!.reason, /YAML syntax/);
  assert.throws(() => loadConfig('/nonexistent/agent.yaml'), (err: unknown) => err instanceof ConfigError && /cannot read/.test(err.message));
});

test('the error message never echoes a password', () => {
  const problems = problemsOf('site: {id: a}\nsip: {domain: d}\nextensions:\n  - {number: "1", password: "hunter2-secret"}\n');
  assert.ok(!JSON.stringify(problems).includes('hunter2'));
});
