#!/usr/bin/env bash
# The whole suite: installs what it needs, type-checks, then runs every test on Node 24.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh --test
source scripts/node-env.sh
# Voicemail prompts from the checked-in script (espeak-ng); only changed ones are redone.
node agent/voicemail/prompts/build.ts
echo "==> node $(node --version); type-checking" >&2
npx --no-install tsc --noEmit -p .
echo "==> running tests" >&2
# One file at a time: integration tests bind ports and start real peers, and the
# machine has two cores.
exec node --test --test-concurrency=1 --test-reporter=spec "${@:-test/**/*.test.ts}"
