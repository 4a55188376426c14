#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests
# need when it is missing (Debian's redis-server, chromium and
# chromium-driver), then runs `cargo test --workspace --all-features`.
# Extra arguments go to cargo test (e.g. `scripts/test.sh --test browser`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# The interop tests run a real OpenID provider and an independent JOSE
# library from the npm registry (pinned in tests/oidc/package-lock.json).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages the tests need)"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "error: the tests need ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "installing the interop tests' npm packages (npm ci in tests/oidc)"
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

exec cargo test --workspace --all-features "$@"
