#!/usr/bin/env bash
# Import benchmark: herald import of N recipients (default 1,000,000; HERALD_BENCH_ROWS) against
# sqlite3's ".import" of the same CSV in the same run, plus herald's peak RSS.
# Targets: at most 1.5x sqlite3's time, under 200 MiB. Exits non-zero when a target is missed.
# Needs sqlite3 (apt-get install sqlite3); /usr/bin/time (package "time") gives the peak RSS,
# /proc polling is the fallback. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "bench-import: sqlite3 is not installed (apt-get install sqlite3)" >&2
    exit 2
fi
cargo build --release
cargo bench --bench import
