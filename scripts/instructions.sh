#!/usr/bin/env bash
# Instructions per verification (callgrind), keycard vs raw
# jsonwebtoken::decode, same token and key. Only the measured loop is counted
# (--toggle-collect), so setup noise is excluded and the count is
# repeatable for a given binary: regressions show despite noisy machines.
# Usage: scripts/instructions.sh [ALG ...]   (default: HS256 RS256 ES256 EdDSA)
# Then, for HS256, the whole request through each load_server app
# (KEYCARD_APP_ROWS=0 skips it).
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
# keycard: the layer, then `Claims<T>` in the handler (two walks over the
# payload); typed: `JwtAuth::claims::<T>()`, where the one walk that checks
# the payload also deserializes T.
printf '%-6s %9s %9s %13s %8s %8s %9s %9s\n' alg keycard typed jsonwebtoken "k / jwt" "t / jwt" floor "t / floor"
for alg in "${algs[@]}"; do
  k=$(( $(ir keycard "$alg" 201) / 202 ))
  t=$(( $(ir keycard-typed "$alg" 201) / 202 ))
  j=$(( $(ir jsonwebtoken "$alg" 201) / 202 ))
  if [ "$alg" = HS256 ]; then
    f=$(( $(ir floor "$alg" 201) / 202 ))
    printf '%-6s %9d %9d %13d %8.2f %8.2f %9d %9.2f\n' "$alg" "$k" "$t" "$j" "$(echo "$k / $j" | bc -l)" "$(echo "$t / $j" | bc -l)" "$f" "$(echo "$t / $f" | bc -l)"
  else
    printf '%-6s %9d %9d %13d %8.2f %8.2f %9s %9s\n' "$alg" "$k" "$t" "$j" "$(echo "$k / $j" | bc -l)" "$(echo "$t / $j" | bc -l)" - -
  fi
done

# The whole request on the server side: the axum app that
# examples/load_server.rs serves for each mode, called in-process from the
# request to the collected body (benches/support/apps.rs). Only the socket
# and hyper's parsing are left out; they are the same for every mode.
# "added" is the mode's instructions minus the no-auth app's.
if [ "${KEYCARD_APP_ROWS:-1}" = 1 ]; then
  echo
  printf '%-14s %9s %9s %11s %11s\n' "app (HS256)" request added "÷ floor" "÷ f. added"
  none=$(( $(ir app-none HS256 201) / 202 ))
  floor=$(( $(ir app-floor HS256 201) / 202 ))
  for mode in none floor keycard keycard-typed jsonwebtoken; do
    case $mode in none) n=$none ;; floor) n=$floor ;; *) n=$(( $(ir "app-$mode" HS256 201) / 202 )) ;; esac
    printf '%-14s %9d %9d %11.3f %11.3f\n' "$mode" "$n" $(( n - none )) "$(echo "$n / $floor" | bc -l)" "$(echo "($n - $none) / ($floor - $none)" | bc -l)"
  done
fi
