// The config validator is compiled ahead of time (agent/config/build-validator.ts):
// the checked-in file must be what the build script makes from the current schema,
// and the agent must use it rather than compiling the schema at every start.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { GENERATED_FILE, validatorSource } from '../../agent/config/build-validator.ts';
import precompiled from '../../agent/config/config-validator.generated.cjs';
import { configValidator } from '../../agent/config/validator.ts';

test('the generated validator is up to date with agent/config/schema.ts (else: node agent/config/build-validator.ts)', () => {
  assert.ok(readFileSync(GENERATED_FILE, 'utf8') === validatorSource(), 'config-validator.generated.cjs is stale: run node agent/config/build-validator.ts');
});

test('the agent validates with the generated validator', () => {
  assert.equal(configValidator(), precompiled);
});
