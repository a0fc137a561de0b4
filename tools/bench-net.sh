#!/usr/bin/env bash
# The network load benchmark: builds release, then `chaosledger bench-net` (4 validator
# processes, HTTP clients; committed events/s and commit latency at light, half and
# full load next to raw libsodium verification measured in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
swift build -c release --product chaosledger
exec .build/release/chaosledger bench-net "$@"
