// The config schema's validator. Compiling the schema with Ajv took ~130 ms of every
// start (10,000-extension cold start, docs/decisions/0010), so it is compiled ahead
// of time into config-validator.generated.cjs (agent/config/build-validator.ts). The
// generated file records a hash of the schema and of the Ajv options; when it does
// not match (schema.ts changed and the file was not rebuilt) the schema is compiled
// here as before, so a stale file costs time, never a wrong verdict.
import { createHash } from 'node:crypto';
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import precompiled from './config-validator.generated.cjs';
import { configSchema } from './schema.ts';

export const AJV_OPTIONS: Options = { allErrors: true, useDefaults: true, strict: true };

export function newAjv(options: Options): Ajv {
  const ajv = new Ajv(options);
  ajv.addKeyword({ keyword: 'restart', schemaType: 'boolean' });
  return ajv;
}

/** What the generated validator depends on: the schema and the options. */
export function schemaHash(): string {
  return createHash('sha256').update(JSON.stringify([configSchema, AJV_OPTIONS])).digest('hex').slice(0, 16);
}

export function configValidator(): ValidateFunction {
  if (precompiled.schemaHash === schemaHash()) return precompiled;
  return newAjv(AJV_OPTIONS).compile(configSchema);
}
