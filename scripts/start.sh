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
exec node agent/cli.ts start --config "${BRANCHLINE_CONFIG:-config/sample.yaml}" "$@"
