#!/usr/bin/env bash
# The soak run (issue 7, items 7 and 8): the kill -9 storm and the churn
# tests of crates/bin/tests/faults.rs with their full counts, which CI runs
# smaller: celld killed by SIGKILL at 20 random moments of a storm of
# run/connect/disconnect/rm/network create/rm, then 1000 run/rm and 500
# connect/disconnect cycles. Release build; needs root; everything happens
# in sandbox namespaces, as in the other end-to-end tests. The counts can be
# changed through the same variables; CELL_STORM_SEED replays a storm's
# choices. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CELL_STORM_KILLS=${CELL_STORM_KILLS:-20}
export CELL_CHURN_RUNS=${CELL_CHURN_RUNS:-1000}
export CELL_CHURN_CONNECTS=${CELL_CHURN_CONNECTS:-500}
echo "soak: $CELL_STORM_KILLS kills in the storm, $CELL_CHURN_RUNS run/rm and" \
    "$CELL_CHURN_CONNECTS connect/disconnect cycles"
# One test at a time, so that the figures each prints are its own.
cargo test --release -p cell --test faults -- --nocapture --test-threads 1 storm churn
