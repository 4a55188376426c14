#!/usr/bin/env bash
# Instructions per verification (callgrind), keycard vs raw
# jsonwebtoken::decode, same token and key. Only the measured loop is counted
# (--toggle-collect), so setup noise is excluded and the count is
# repeatable for a given binary: regressions show despite noisy machines.
# Usage: scripts/instructions.sh [ALG ...]   (default: HS256 RS256 ES256 EdDSA)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }
cargo bench --bench instructions --no-run 2>/dev/null
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -n1)
algs=("$@"); [ ${#algs[@]} -gt 0 ] || algs=(HS256 RS256 ES256 EdDSA)
ir() { # mode alg iters -> instructions inside the measured loop
  local out; out=$(mktemp)
  valgrind --tool=callgrind --toggle-collect='*measured_loop*' --callgrind-out-file="$out" "$bin" "$1" "$2" "$3" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out"; rm -f "$out"
}
printf '%-6s %14s %14s %7s\n' alg keycard jsonwebtoken ratio
for alg in "${algs[@]}"; do
  k=$(( $(ir keycard "$alg" 201) / 202 ))
  j=$(( $(ir jsonwebtoken "$alg" 201) / 202 ))
  printf '%-6s %14d %14d %7.2f\n' "$alg" "$k" "$j" "$(echo "$k / $j" | bc -l)"
done
