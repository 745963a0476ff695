// The command-line entry point. It only prepares the runtime before anything else
// loads:
// - Node's on-disk compile cache: the agent's modules are read from the cache on
//   every start after the first, which takes roughly 40 % off the time from start to
//   the first answered REGISTER (docs/benchmarks.md);
// - for `start`, V8 heap flags that keep the long-running agent small under load
//   (agent/runtime/memory-flags.ts): they only work from the command line, where the
//   launchers put them; started without them, the process relaunches itself once.
import { enableCompileCache } from 'node:module';
import { relaunchWithMemoryFlags } from './runtime/memory-flags.ts';

if (process.argv[2] === 'start') relaunchWithMemoryFlags();
enableCompileCache?.();
await import('./cli-main.ts');
