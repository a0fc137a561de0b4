#!/usr/bin/env bash
# Sets up and runs the whole test suite (Swift Testing). Some storage tests mount a
# small tmpfs to produce a real full disk and read-only filesystem: run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
swift test
