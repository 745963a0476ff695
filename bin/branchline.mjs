#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20 --v8-pool-size=1
// The installed entry point. Node 24 runs our TypeScript sources directly (type
// stripping); the single-executable image uses a bundled build instead. The V8 heap
// flags are on the shebang line (GNU env -S splits them) so that `branchline start`
// runs tuned from its first process, without relaunching itself
// (agent/runtime/memory-flags.ts; keep the two lists the same).
import '../agent/cli.ts';
