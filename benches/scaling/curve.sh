#!/usr/bin/env bash
# The whole scaling curve in one run, for a machine with more cores than the one that built
# it (the binaries need nothing from the workspace; copy them, then run this script there):
#
#   cargo build --locked --profile bench -p aurigraph-benches --bin scaling
#   cargo build --locked --release -p aurigraph-cli --bin aurigraph          # for GRPC=1
#   mkdir -p .device/bin && cp "${CARGO_TARGET_DIR:-target}"/release/{scaling,aurigraph} .device/bin/
#   ./benches/scaling/curve.sh                 # on the big machine, from the checkout
#
# 1. the executors (sequential, scheduled, Block-STM with its variants) at 1, 2, 4, 8, 16
#    threads (those the machine has), blocks of 10,000 and 50,000 transfers;
# 2. signatures and the pipeline with the process pinned to 1, 2, 4, 8, 16 cores (taskset,
#    as the issue's table), 1 and 4 submitting threads;
# 3. with GRPC=1, one node and `aurigraph load` pinned together to 2, 4, 8, 16 cores.
# `.device/` is git-ignored. BIN=folder overrides where the binaries are.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.device/bin}
CORES=$(nproc)
LIST=""
for c in 1 2 4 8 16; do
  if [ "$c" -le "$CORES" ]; then LIST="$LIST${LIST:+,}$c"; fi
done
echo "machine: $CORES cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uptime | sed 's/.*load/load/')"
"$BIN/scaling" --only executors --threads "$LIST" --reps "${REPS:-11}" --stm-variants
for c in ${LIST//,/ }; do
  taskset -c "0-$((c - 1))" "$BIN/scaling" --only signatures,pipeline --threads "$c" \
    --submitters 1,4 --pipeline-reps "${PIPELINE_REPS:-3}" | grep -E "^(signatures|pipeline) "
done
if [ "${GRPC:-0}" = 1 ]; then
  for c in 2 4 8 16; do
    if [ "$c" -le "$CORES" ]; then
      BUILD=0 AURIGRAPH="$BIN/aurigraph" CORES="0-$((c - 1))" RATES="${RATES:-100000}" \
        DURATION=8s ./benches/grpc/run.sh
    fi
  done
fi
