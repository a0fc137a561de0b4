#!/usr/bin/env bash
# Sets up, builds (release), runs the seeded demo workload into a fresh log in
# ${1:-data/demo}, then replays and verifies it from genesis.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
dir="${1:-data/demo}"
swift build -c release --product chaosledger
rm -rf "$dir"
.build/release/chaosledger demo --dir "$dir"
.build/release/chaosledger replay --dir "$dir"
