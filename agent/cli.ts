// The command-line entry point. It only turns on Node's on-disk compile cache before
// anything else loads: the agent's modules are then read from the cache on every
// start after the first, which takes roughly 40 % off the time from start to the
// first answered REGISTER (docs/benchmarks.md).
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
await import('./cli-main.ts');
