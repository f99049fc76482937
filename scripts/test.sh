#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, unit + integration tests (and everything they need).
# Needs only the Rust toolchain, Node 20 and Python 3.11 on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
echo "== cargo bench --no-run (benchmarks must compile)"
cargo bench --workspace --no-run --all-features
echo "== cargo test"
cargo test --workspace --all-features
