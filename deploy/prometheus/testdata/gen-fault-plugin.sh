#!/usr/bin/env bash
# Rebuilds fault-trap-after-warmup.wasm from fault-trap-after-warmup.wat (next to this script),
# the fault-injected plugin deploy/check-prometheus.sh loads to provoke a guard rollback.
# Needs wabt's `wat2wasm` (apt-get install wabt) or Python's wasmtime (pip install wasmtime).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if command -v wat2wasm >/dev/null; then
    wat2wasm fault-trap-after-warmup.wat -o fault-trap-after-warmup.wasm
else
    python3 -c 'import sys, wasmtime; open(sys.argv[2], "wb").write(wasmtime.wat2wasm(open(sys.argv[1]).read()))' \
        fault-trap-after-warmup.wat fault-trap-after-warmup.wasm
fi
echo "wrote $(pwd)/fault-trap-after-warmup.wasm ($(wc -c <fault-trap-after-warmup.wasm) bytes)"
