# Sourced, not run: puts a Node.js 24 on PATH for this shell.
# The appliance must run Node 24 LTS; when the machine's node is older we take the
# official binary and headers from the npm registry (node-linux-<arch>), the only
# download these machines can reach, and point node-gyp at those headers so native
# addons (sqlite3) are built for the Node that runs them.
BRANCHLINE_NODE_MAJOR=24
branchline_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

branchline_node_major() {
  "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

if [ "$(branchline_node_major node)" != "$BRANCHLINE_NODE_MAJOR" ]; then
  case "$(uname -m)" in
    x86_64) branchline_arch=x64 ;;
    aarch64|arm64) branchline_arch=arm64 ;;
    *) echo "unsupported architecture $(uname -m)" >&2; return 1 ;;
  esac
  branchline_pkg="$branchline_root/.toolchain/node_modules/node-linux-$branchline_arch"
  if [ ! -x "$branchline_pkg/bin/node" ]; then
    echo "==> fetching Node.js $BRANCHLINE_NODE_MAJOR (node-linux-$branchline_arch) from the npm registry" >&2
    mkdir -p "$branchline_root/.toolchain"
    npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
      --prefix "$branchline_root/.toolchain" "node-linux-$branchline_arch@$BRANCHLINE_NODE_MAJOR" >&2 || return 1
  fi
  export PATH="$branchline_pkg/bin:$PATH"
  export npm_config_nodedir="$branchline_pkg"
fi
