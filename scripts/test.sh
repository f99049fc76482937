#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, unit + integration tests (and everything they need).
# Needs only the Rust toolchain, Node 20 and Python 3.11 on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Python azure-identity (conformance test of the emulator) in target/py"
if [ ! -x target/py/bin/python ] || ! target/py/bin/python -c "import azure.identity" 2>/dev/null; then
  python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "azure-identity==1.27.0"
fi
export ENTRA_EMULATOR_PYTHON="$PWD/target/py/bin/python"

echo "== Azurite (npm, pinned in tests/azurite) for the Blob storage tests"
# npm ci only when the lockfile changed since the last install (fast when already installed).
# Without Node/npm the Azurite tests fail and say how to install it.
azurite_stamp=tests/azurite/node_modules/.installed-lockfile
if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm (Node.js 20) not found; the Azurite tests (tests/it/azurite.rs) will fail" >&2
elif [ ! -f "$azurite_stamp" ] || ! cmp -s tests/azurite/package-lock.json "$azurite_stamp"; then
  npm ci --prefix tests/azurite --no-audit --no-fund --loglevel=error
  cp tests/azurite/package-lock.json "$azurite_stamp"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo clippy (all targets, default features)"
cargo clippy --workspace --all-targets -- -D warnings
# Alone, so that no other member's features (the CLI enables doctor) are unified into it: what a
# user's plain build of the library sees.
cargo clippy -p azure_identity_k8s --all-targets -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
echo "== benchmarks must compile (built with the dev profile, reusing the test build; run them with cargo bench)"
cargo build --workspace --all-features --benches
echo "== cargo package: the library and the CLI as crates.io would receive them (entra_emulator: publish = false)"
# --no-verify: verifying builds both packages once more from their unpacked sources, as a
# workspace of their own whose dependency builds share nothing with the ones above (for 0.1.0 it
# passed, in 6 min on this 2-core machine); packaging itself checks the manifests (every dependency
# has a version, the CLI resolves against the library's package) and the check below the file list.
cargo package -p azure_identity_k8s -p azure-identity-k8s-cli --no-verify --allow-dirty
# build.rs renders README.md and docs/*.md (the pages the errors' docs.rs links point at) and
# docs/links.rs is its include!: all must be in the package, or docs.rs has no pages to link.
packaged=$(cargo package -p azure_identity_k8s --list --allow-dirty)
for file in LICENSE CHANGELOG.md README.md build.rs docs/links.rs docs/*.md; do
  grep -qxF "$file" <<<"$packaged" || { echo "error: $file is not in the packaged crate" >&2; exit 1; }
done
echo "== cargo test"
cargo test --workspace --all-features
