#!/usr/bin/env bash
# The test command: installs what is needed, then checks formatting, lints
# and runs the whole test suite (unit tests, kernel tests and end-to-end
# tests in sandbox namespaces; the kernel ones need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace 2>&1
