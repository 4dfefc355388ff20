#!/usr/bin/env bash
# The project's checks, exactly as CI runs them: formatting, lints, then every test.
#   scripts/test.sh
# Installs the system packages the tests need (compilers, MPICH for comparisons, Chromium for the
# dashboard's browser test) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-packages.sh test
bash scripts/install-browser.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
cargo build --workspace --locked
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
