#!/usr/bin/env bash
# Installs everything the agent and its tests need: Node.js 24, npm packages (native
# addons built against that Node), and with --test the Debian peers the suite talks to.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/node-env.sh

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ]; then
  # Debian packages: the real peers of the test suite.
  needed=()
  command -v sipp >/dev/null || needed+=(sip-tester)
  command -v baresip >/dev/null || needed+=(baresip-core)
  command -v sox >/dev/null || needed+=(sox)
  command -v mosquitto >/dev/null || needed+=(mosquitto)
  command -v kamailio >/dev/null || needed+=(kamailio)        # the registrar the SIPp harness is proved against
  command -v espeak-ng >/dev/null || needed+=(espeak-ng)      # speech for the DTMF talk-off test
  command -v mksquashfs >/dev/null || needed+=(squashfs-tools) # the update bundle's image
  command -v socat >/dev/null || needed+=(socat)              # pty pairs for the serial AT driver's modem emulator
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql) # the controller's PostgreSQL store (started by its test)
  if [ ${#needed[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${needed[*]}" >&2
    if [ "$(id -u)" = 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${needed[@]}" >&2
  fi
fi

# npm packages, rebuilt when the Node that runs them changes ABI.
stamp=node_modules/.branchline-node-abi
abi=$(node -p process.versions.modules)
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$abi" ] \
   || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "==> installing npm packages for Node $(node --version)" >&2
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
  else
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
  echo "$abi" > "$stamp"
fi
