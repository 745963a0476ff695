// Types of the generated validator (agent/config/build-validator.ts).
import type { ValidateFunction } from 'ajv';
declare const validate: ValidateFunction & { schemaHash: string };
export = validate;
