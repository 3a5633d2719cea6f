#!/usr/bin/env bash
# The test command: installs what is needed, then checks formatting, lints
# and runs the whole test suite (unit tests, kernel tests and end-to-end
# tests in sandbox namespaces; the kernel ones need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Every binary first: the CNI tests run the cell-cni binary, which
# `cargo test` builds only for a package that has integration tests.
cargo build --workspace --bins --quiet
cargo test --workspace 2>&1
