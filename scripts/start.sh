#!/usr/bin/env bash
# Starts the agent on its embedded defaults: the sample config, state in ./data.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
source scripts/node-env.sh
# Voicemail prompts from the checked-in script (espeak-ng); only changed ones are redone.
# Without espeak-ng the agent still starts; voicemail then plays tones only.
node agent/voicemail/prompts/build.ts || echo "==> voicemail prompts not built (install espeak-ng)" >&2
# The memory settings on the command line, as the service unit gives them: V8 and glibc
# read them only at process start, and without them the agent relaunches itself once
# (agent/runtime/memory-flags.ts; keep the flags the same as there).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec node --max-semi-space-size=4 --heap-growing-percent=20 --v8-pool-size=1 agent/cli.ts start --config "${BRANCHLINE_CONFIG:-config/sample.yaml}" "$@"
