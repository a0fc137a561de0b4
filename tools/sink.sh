#!/usr/bin/env bash
# Sets up and runs the PostgreSQL sink beside the devnet (./tools/devnet.sh in another
# terminal): a PostgreSQL cluster of its own in data/postgres on 127.0.0.1:5433, and
# `chaosledger sink postgres` following validator 0's log (data/devnet/node-0/log) until
# Ctrl-C. Query it with `psql postgres://postgres@127.0.0.1:5433/postgres` (docs/SQL.md).
# Extra arguments go to `chaosledger sink postgres` (e.g. --verbose, --stop-at-head).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
swift build -c release --product chaosledger
log=${SINK_LOG:-data/devnet/node-0/log}
until [ -f "$log/data.mdb" ]; do echo "sink: waiting for $log (start ./tools/devnet.sh)"; sleep 2; done
url=$(./tools/postgres.sh start data/postgres "${SINK_PORT:-5433}" 2>/dev/null || true)
[ -n "$url" ] || url="postgres://postgres@127.0.0.1:${SINK_PORT:-5433}/postgres"   # already running
echo "sink: writing into $url"
exec .build/release/chaosledger sink postgres --log "$log" --database "$url" "$@"
