#!/usr/bin/env bash
# A PostgreSQL server of its own for the sink, its tests and its benchmark, from
# Debian's packages (tools/setup.sh installs them): a cluster in DIR on 127.0.0.1:PORT,
# trust authentication for the local user `postgres`.
#   tools/postgres.sh start DIR PORT   # creates the cluster if DIR has none, starts it, prints its URL
#   tools/postgres.sh stop DIR
# initdb refuses to run as root: as root, the cluster runs as the `postgres` user.
set -euo pipefail
# Close what the caller left open besides stdin, stdout and stderr (Foundation's Process
# hands its children a socket and waits until every holder closed it): a server started
# from here would otherwise hold it for its whole life.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case $fd in 0|1|2|255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
done
cmd=${1:?start or stop}; dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server is not installed (./tools/setup.sh installs it)" >&2; exit 1; }
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
case $cmd in
start)
  port=${3:?port}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    "${as[@]}" "$bin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
  fi
  # The server must not inherit this script's output: a caller reading it to the end
  # would wait for the server to exit.
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1" start </dev/null >"$dir/pg_ctl.out" 2>&1; then
    cat "$dir/pg_ctl.out" "$dir/server.log" >&2
    exit 1
  fi
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  "${as[@]}" "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
