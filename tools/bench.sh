#!/usr/bin/env bash
# Release-build benchmark of the spine, with raw libsodium and raw LMDB baselines
# measured in the same run. Extra arguments go to `chaosledger bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
swift build -c release --product chaosledger
.build/release/chaosledger bench "$@"
