#!/usr/bin/env bash
# Regenerates schemas/vectors.json from the Swift implementation. Run after a deliberate
# format change only: the vectors are the contract other languages check against.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product chaosledger
.build/debug/chaosledger vectors > schemas/vectors.json
echo "wrote schemas/vectors.json"
