#!/usr/bin/env bash
# Starts the agent on its embedded defaults: the sample config, state in ./data.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh
source scripts/node-env.sh
exec node agent/cli.ts start --config "${BRANCHLINE_CONFIG:-config/sample.yaml}" "$@"
