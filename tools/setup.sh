#!/usr/bin/env bash
# Installs everything gpurent needs from the package registries alone: Node packages (solc-js,
# anvil, forge, OpenZeppelin), a Python virtualenv with the pinned lock, the solc shim where
# py-solc-x, Brownie and forge find it, and Brownie's network entries. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

solc_version="$(node -p "require('./package.json').devDependencies.solc")"

if [ ! -x node_modules/.bin/anvil ] || [ package-lock.json -nt node_modules/.installed ]; then
  echo "==> npm ci (solc ${solc_version}, anvil, forge, OpenZeppelin Contracts)"
  npm ci --no-audit --no-fund
  touch node_modules/.installed
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
if [ requirements.lock -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "==> pip install -r requirements.lock"
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements.lock
  .venv/bin/pip install --quiet --no-deps -e .
  touch .venv/.installed
fi

# The provider daemon's tests (tests/provider) run a real dockerd and a busybox-static image.
# As root on a Debian/Ubuntu machine (CI), install Debian's docker.io and busybox-static once;
# elsewhere say what is missing (make test then fails those tests rather than skipping them).
if ! command -v dockerd >/dev/null 2>&1 || ! { dpkg -s busybox-static >/dev/null 2>&1 || [ -n "${GPURENT_BUSYBOX:-}" ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${GPURENT_NO_APT:-}" ]; then
    echo "==> apt-get install docker.io busybox-static (tests/provider runs a real Docker daemon)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null
  else
    echo "==> note: dockerd or busybox-static missing; tests/provider needs them (as root: apt-get install docker.io busybox-static)"
  fi
fi

# The browser tests (tests/web) drive Debian's Chromium through Playwright (the PyPI package;
# Playwright's own browser download is never used). As root on Debian, install it once.
if [ ! -x /usr/bin/chromium ] && [ -z "${GPURENT_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${GPURENT_NO_APT:-}" ]; then
    echo "==> apt-get install chromium (tests/web drive it headless through Playwright)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "==> note: /usr/bin/chromium missing; tests/web need it (as root: apt-get install chromium, or set GPURENT_CHROMIUM)"
  fi
fi

# The web pages' front-end packages (npm, no CDN) beside the pages: oracle/web/static/vendor/ (gitignored).
vendor=oracle/web/static/vendor
mkdir -p "$vendor"
for f in node_modules/axe-core/axe.min.js node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css; do
  cmp -s "$f" "$vendor/$(basename "$f")" || cp "$f" "$vendor/"
done

echo "==> solc ${solc_version} (solc-js behind a native-style front end)"
mkdir -p "$HOME/.solcx"
# The shim gets its own copy of solc-js beside ~/.solcx, so it does not depend on this checkout
# (py-solc-x and Brownie look there from any project on the machine).
solcjs_home="$HOME/.solcx/solcjs-v${solc_version}"
if [ "$(node -p "try{require('${solcjs_home}/node_modules/solc/package.json').version}catch(e){''}")" != "${solc_version}" ]; then
  npm install --prefix "$solcjs_home" --no-save --no-audit --no-fund --prefer-offline "solc@${solc_version}" >/dev/null
fi
cp tools/solc-shim.js "$solcjs_home/solc-shim.js"
shim="$HOME/.solcx/solc-v${solc_version}"
printf '#!/bin/sh\nexec node "%s/solc-shim.js" "$@"\n' "$solcjs_home" > "$shim"
chmod +x "$shim"

# Brownie 1.22 rejects a networks: section in brownie-config.yaml; declare them here.
export PATH="$root/node_modules/.bin:$PATH"
declare_network() {  # env id key=value...
  local env="$1" id="$2"; shift 2
  # Read the whole list first (`brownie ... | grep -q` under pipefail fails when grep stops at
  # the first match and brownie dies of SIGPIPE), without colour codes, and match the id
  # exactly ("sepolia-rpc" must not match inside "base-sepolia-rpc").
  local networks
  networks="$(.venv/bin/brownie networks list 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' || true)"
  if grep -qE -- ": ${id}\$" <<<"$networks"; then
    .venv/bin/brownie networks modify "$id" "$@" >/dev/null
  else
    .venv/bin/brownie networks add "$env" "$id" "$@" >/dev/null
  fi
}
echo "==> brownie networks: sepolia-rpc, base-sepolia-rpc (RPC URLs from the environment)"
declare_network Ethereum sepolia-rpc 'host=$SEPOLIA_RPC_URL' chainid=11155111 explorer=https://api-sepolia.etherscan.io/api
declare_network "Base" base-sepolia-rpc 'host=$BASE_SEPOLIA_RPC_URL' chainid=84532 explorer=https://api-sepolia.basescan.org/api
