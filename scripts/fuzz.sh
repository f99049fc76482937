#!/usr/bin/env bash
# Run every cargo-fuzz target for a fixed time (default 60 s each). Needs the nightly toolchain
# and cargo-fuzz (`rustup toolchain install nightly && cargo install cargo-fuzz`). Not part of
# scripts/test.sh: CI may have no nightly. Crashes land in fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh            # all targets, 60 s each
#   bash scripts/fuzz.sh 300        # all targets, 300 s each
#   bash scripts/fuzz.sh 60 token_file
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jwt_decode entra_response token_file)
fi

cd fuzz
mkdir -p target && cargo +nightly fuzz build
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "corpus/$t"
  # -print_final_stats prints stat::number_of_executed_units at the end.
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 |
    tee "target/fuzz-$t.log" | grep -E "^(stat::|#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY)" || true
  if grep -q "ERROR: libFuzzer\|panicked at" "target/fuzz-$t.log"; then
    echo "!! $t crashed; see fuzz/artifacts/$t/ and fuzz/target/fuzz-$t.log" >&2
    exit 1
  fi
done
