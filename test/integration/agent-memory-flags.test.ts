// The agent runs with its memory settings however it was started: V8 heap flags only
// work from the command line, so `branchline start` relaunches itself with them
// (agent/runtime/memory-flags.ts). Checked on the running process, as ps would show it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { MALLOC_ENV, missingFlags, V8_MEMORY_FLAGS } from '../../agent/runtime/memory-flags.ts';
import { startAgent } from '../helpers/agent.ts';

test('a started agent runs with the V8 heap flags and malloc settings, under the PID it was spawned with', async () => {
  const agent = await startAgent({ extensions: [{ number: '1001', password: 'secret1001' }] });
  try {
    const argv = readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8').split('\0');
    for (const flag of V8_MEMORY_FLAGS) assert.ok(argv.includes(flag), `${flag} missing from ${argv.join(' ')}`);
    assert.ok(argv.includes('start'), 'still the start command');
    const env = readFileSync(`/proc/${agent.pid}/environ`, 'utf8').split('\0');
    for (const [key, value] of Object.entries(MALLOC_ENV)) assert.ok(env.includes(`${key}=${value}`), `${key}=${value} missing`);
    assert.equal(argv.filter((a) => a === V8_MEMORY_FLAGS[0]).length, 1, 'relaunched once, not in a loop');
    assert.ok(agent.running());
  } finally {
    await agent.cleanup();
  }
});

test('a flag the operator already gave, with any value, is left as given', () => {
  assert.deepEqual(missingFlags(['--max-semi-space-size=16']), V8_MEMORY_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')));
  assert.deepEqual(missingFlags(['--max_semi_space_size=16', '--heap-growing-percent=50']), []);
  assert.deepEqual(missingFlags([]), [...V8_MEMORY_FLAGS]);
});
