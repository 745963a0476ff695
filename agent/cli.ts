// The command-line entry point. It only prepares the runtime before anything else
// loads:
// - Node's on-disk compile cache: the agent's modules are read from the cache on
//   every start after the first, which takes roughly 40 % off the time from start to
//   the first answered REGISTER (docs/benchmarks.md);
// - a 4 MB cap on V8's young-generation semi-spaces: under load V8 otherwise grows
//   them to tens of MB and never gives the memory back (RSS 363 → 237 MB at 3,000
//   registrations/s with 10,000 bindings, for ~5 % more CPU; docs/benchmarks.md).
import { enableCompileCache } from 'node:module';
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--max-semi-space-size=4');
enableCompileCache?.();
await import('./cli-main.ts');
