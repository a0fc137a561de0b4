#!/usr/bin/env bash
# Sets up, builds (release) and runs the local network: 4 validator processes with
# different personalities on 127.0.0.1, agent clients submitting a signed workload over
# HTTP, and a live status line until Ctrl-C. Keys, genesis, configs, data and logs go
# to data/devnet (a second run resumes the same chain; delete the folder for a new one).
# Extra arguments go to `chaosledger devnet` (e.g. --follower, --rate 500, --duration 30).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
swift build -c release --product chaosledger
exec .build/release/chaosledger devnet --dir data/devnet "$@"
