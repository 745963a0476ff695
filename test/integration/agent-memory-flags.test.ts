// The agent runs with its memory settings however it was started: V8 heap flags only
// work from the command line. Every launcher gives them (the installed `branchline`'s
// shebang, scripts/start.sh, the test helper, the single executable); a bare
// `node agent/cli.ts start` relaunches itself with them (agent/runtime/memory-flags.ts).
// Checked on the running process, as ps would show it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { MALLOC_ENV, missingFlags, relaunchPlan, V8_MEMORY_FLAGS } from '../../agent/runtime/memory-flags.ts';
import { REPO_ROOT, startAgent } from '../helpers/agent.ts';

function processOf(pid: number): { argv: string[]; env: string[] } {
  return {
    argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
    env: readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'),
  };
}

test('an agent started bare relaunches itself once with the V8 heap flags and malloc settings, under the PID it was spawned with', async () => {
  const agent = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }], nodeFlags: [] });
  try {
    const { argv, env } = processOf(agent.pid);
    for (const flag of V8_MEMORY_FLAGS) assert.ok(argv.includes(flag), `${flag} missing from ${argv.join(' ')}`);
    assert.ok(argv.includes('start'), 'still the start command');
    for (const [key, value] of Object.entries(MALLOC_ENV)) assert.ok(env.includes(`${key}=${value}`), `${key}=${value} missing`);
    assert.equal(argv.filter((a) => a === V8_MEMORY_FLAGS[0]).length, 1, 'relaunched once, not in a loop');
    // The marker the relaunch sets: /proc shows the environment the process image started with.
    assert.ok(env.includes('BRANCHLINE_RUNTIME_TUNED=1'), 'relaunched');
    assert.ok(agent.running());
  } finally {
    await agent.cleanup();
  }
});

test('an agent started with the flags runs as started: the flags once, no relaunch', async () => {
  const agent = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }] });
  try {
    const { argv, env } = processOf(agent.pid);
    assert.ok(!env.some((e) => e.startsWith('BRANCHLINE_RUNTIME_TUNED=')), 'not relaunched');
    // As spawned: node, the flags, the script. A relaunch would have added them again after its own.
    assert.deepEqual(argv.slice(1, 1 + V8_MEMORY_FLAGS.length), [...V8_MEMORY_FLAGS]);
    for (const flag of V8_MEMORY_FLAGS) assert.equal(argv.filter((a) => a === flag).length, 1);
  } finally {
    await agent.cleanup();
  }
});

test('the relaunch is decided by the V8 flags alone; a flag the operator gave, with any value, is left as given', () => {
  assert.equal(relaunchPlan([...V8_MEMORY_FLAGS], {}), undefined, 'MALLOC_ARENA_MAX alone is not worth a second process start');
  const plan = relaunchPlan([], { MALLOC_ARENA_MAX: '4' });
  assert.deepEqual(plan?.flags, [...V8_MEMORY_FLAGS]);
  assert.equal(plan?.env['MALLOC_ARENA_MAX'], '4', 'an operator setting is kept');
  assert.equal(relaunchPlan([], {})?.env['MALLOC_ARENA_MAX'], '2');
  assert.deepEqual(missingFlags(['--max-semi-space-size=16']), V8_MEMORY_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')));
  assert.deepEqual(missingFlags(['--max_semi_space_size=16', '--heap-growing-percent=50', '--v8-pool-size=2']), []);
  assert.deepEqual(missingFlags([]), [...V8_MEMORY_FLAGS]);
});

test('the installed entry point and scripts/start.sh give the same flags as memory-flags.ts', () => {
  const shebang = readFileSync(path.join(REPO_ROOT, 'bin', 'branchline.mjs'), 'utf8').split('\n')[0] ?? '';
  assert.match(shebang, /^#!\/usr\/bin\/env -S node /);
  assert.deepEqual(missingFlags(shebang.split(/\s+/)), [], shebang);
  const startLine = readFileSync(path.join(REPO_ROOT, 'scripts', 'start.sh'), 'utf8').split('\n').find((l) => l.startsWith('exec node ')) ?? '';
  assert.deepEqual(missingFlags(startLine.split(/\s+/)), [], startLine);
  for (const flag of V8_MEMORY_FLAGS) {
    assert.ok(shebang.split(/\s+/).includes(flag), `${flag} with the same value in the shebang`);
    assert.ok(startLine.split(/\s+/).includes(flag), `${flag} with the same value in start.sh`);
  }
});
