#!/usr/bin/env bash
# The test suite on the azure pre-release line: a temporary copy of the project that requires
# azure_core 1.2.0-beta.1 and azure_identity 1.1.0-beta.1 (what Event Hubs 0.16 and the Key Vault
# 1.1 betas need), builds the benchmarks and runs `cargo test --workspace --all-features`. The
# working tree is not touched.
#
# Dev-dependencies follow the same line: azure_security_keyvault_secrets 1.1.0-beta.1. Crates with
# no release on that line yet (azure_storage_blob, azure_storage_common: their newest releases
# require azure_core ^1.1.0, which Cargo does not let 1.2.0-beta.1 satisfy) are patched: a copy of
# the released crate whose only change is that azure_core requirement.
#
# Usage: bash scripts/test-azure-next.sh   (after scripts/test.sh has installed the Python venv and
# Azurite, or with ENTRA_EMULATOR_PYTHON set). Builds into $CARGO_TARGET_DIR/azure-next (default
# target/azure-next), apart from the main build, whose uplifted binaries (target/debug/
# azure-identity-k8s, used by cli/tests/cli.rs) it would otherwise overwrite. Measured on 2 shared
# cores: 24.5 min cold (12 min CPU), and that directory takes about 15 GB.
# Other betas: AZURE_CORE_NEXT=..., AZURE_IDENTITY_NEXT=..., KEYVAULT_SECRETS_NEXT=...
#
# Code that builds azure_identity's own WorkloadIdentityCredentialOptions (benches, conformance
# tests) must end the literal with `..Default::default()`: 1.1 adds enable_proxy and proxy_client.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
core="${AZURE_CORE_NEXT:-1.2.0-beta.1}"
identity="${AZURE_IDENTITY_NEXT:-1.1.0-beta.1}"
secrets="${KEYVAULT_SECRETS_NEXT:-1.1.0-beta.1}"
# Released crates that still require azure_core ^1.1 and get a relaxed copy.
relax=(azure_storage_blob azure_storage_common)

python="${ENTRA_EMULATOR_PYTHON:-$root/target/py/bin/python}"
if [ ! -x "$python" ]; then
  echo "error: no Python with azure-identity at $python; run 'bash scripts/test.sh' once (it creates target/py) or set ENTRA_EMULATOR_PYTHON" >&2
  exit 1
fi
export ENTRA_EMULATOR_PYTHON="$python"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/azure-next"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
copy="$work/project"
mkdir -p "$copy" "$work/patched"

echo "== copy of the working tree in $copy"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$copy"
if [ -d "$root/tests/azurite/node_modules" ]; then
  ln -s "$(cd "$root/tests/azurite/node_modules" && pwd -P)" "$copy/tests/azurite/node_modules"
fi

echo "== sources of the crates to relax: ${relax[*]}"
manifests="$(cd "$copy" && cargo metadata --format-version 1 |
  python3 -c '
import json, sys
wanted = set(sys.argv[1:])
for p in json.load(sys.stdin)["packages"]:
    if p["name"] in wanted and (p["source"] or "").startswith("registry+"):
        print(p["name"], p["manifest_path"])
' "${relax[@]}")"
patch_section=$'\n[patch.crates-io]\n'
for name in "${relax[@]}"; do
  manifest="$(awk -v n="$name" '$1 == n { print $2 }' <<<"$manifests")"
  if [ -z "$manifest" ]; then
    echo "error: $name is not in the dependency graph any more; remove it from 'relax' in $0" >&2
    exit 1
  fi
  cp -R "$(dirname "$manifest")" "$work/patched/$name"
  python3 - "$work/patched/$name/Cargo.toml" "$core" <<'EOF'
import re, sys
path, core = sys.argv[1:]
text = open(path).read()
new, n = re.subn(r'(\[dependencies\.azure_core\]\nversion = )"[^"]*"', rf'\1"{core}"', text)
if n != 1:
    sys.exit(f"error: no [dependencies.azure_core] version in {path}")
open(path, "w").write(new)
EOF
  patch_section+="$name = { path = \"$work/patched/$name\" }"$'\n'
done

echo "== require azure_core $core, azure_identity $identity, azure_security_keyvault_secrets $secrets"
python3 - "$copy/Cargo.toml" "$core" "$identity" "$secrets" "$patch_section" <<'EOF'
import re, sys
path, core, identity, secrets, patch = sys.argv[1:]
text = open(path).read()
for name, version in [("azure_core", core), ("azure_identity", identity),
                      ("azure_security_keyvault_secrets", secrets)]:
    text, n = re.subn(rf'(?m)^{name} = "[^"]*"$', f'{name} = "{version}"', text)
    if n != 1:
        sys.exit(f'error: Cargo.toml has no line `{name} = "<version>"`; update scripts/test-azure-next.sh')
open(path, "w").write(text + patch)
EOF

cd "$copy"
versions="$(cargo metadata --format-version 1 |
  python3 -c 'import json,sys; print(" ".join(sorted({p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "azure_core"})))')"
echo "azure_core in the build: $versions"
if [ "$versions" != "$core" ]; then
  echo "error: expected only azure_core $core in the dependency graph, found: $versions (cargo tree -i azure_core shows who pulls it)" >&2
  exit 1
fi

echo "== benchmarks must compile"
cargo build --workspace --all-features --benches
echo "== cargo test"
cargo test --workspace --all-features
echo "== the suite passes on azure_core $core / azure_identity $identity"
