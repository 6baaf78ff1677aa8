#!/usr/bin/env bash
# Soak run (issue #7), not part of CI: a large campaign through the scriptable SMTP server with
# 1 % permanent and 5 % temporary refusals, the relay restarted midway, and `herald send` killed
# with SIGKILL twice and resumed. Prints the figures and PASS/FAIL lines; exits 1 on a failure.
# Usage: scripts/soak.sh [RECIPIENTS] [CONNECTIONS]   (defaults: 1000000, 32)
set -euo pipefail
cd "$(dirname "$0")/.."
export HERALD_SOAK_RECIPIENTS="${1:-1000000}"
export HERALD_SOAK_CONNECTIONS="${2:-32}"
exec cargo bench --bench soak
