#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); works on stable Rust with --sanitizer none.
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run:
# turn it into a regression test in tests/attacks.rs or tests/properties.rs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
targets=(token_source verify jwks_document jwk_import dpop_proof dpop_url)
cargo fuzz build --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "fuzzing $t for ${seconds}s"
  cargo fuzz run --sanitizer none "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
