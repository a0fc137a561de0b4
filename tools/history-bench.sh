#!/usr/bin/env bash
# Cost linear in history (issue 17): the same economy workload (`demo --agents 50`) at two
# lengths; for replay time, rebuild time and the log's disk size, the large-to-small
# ratio next to the ratio of their event counts (target: at most 1.15 × it), and the
# large log's replay rate (beside raw verification on every core, measured just before
# each run: target ≥ 80%) and rebuild rate (target ≥ 500,000 events/s).
#
#   tools/history-bench.sh [SMALL_SUBMISSIONS] [LARGE_SUBMISSIONS]   (default 25000 200000)
#
# Release build required (swift build -c release --product chaosledger). The large
# demo takes about 15 minutes: the workload's own agents scan the state to choose
# their next step. Replay and rebuild are medians of three runs. Logs go to a scratch
# directory, removed afterwards (HISTORY_KEEP=DIR keeps them).
set -euo pipefail
small=${1:-25000}
large=${2:-200000}
bin=${CHAOSLEDGER:-$(dirname "$0")/../.build/release/chaosledger}
# HISTORY_KEEP=DIR keeps the logs there (to profile or rerun them); by default they go.
if [ -n "${HISTORY_KEEP:-}" ]; then dir=$HISTORY_KEEP; mkdir -p "$dir"; else
    dir=$(mktemp -d /tmp/history-bench.XXXXXX)
    trap 'rm -rf "$dir"' EXIT
fi

declare -A events replay rebuild disk share
for n in "$small" "$large"; do
    if [ -d "$dir/$n" ] && [ -s "$dir/$n.demo.txt" ]; then
        echo "history-bench: reusing the log in $dir/$n" >&2
    else
        echo "history-bench: demo --agents 50 --events $n…" >&2
        "$bin" demo --dir "$dir/$n" --agents 50 --events "$n" --seed 1 > "$dir/$n.demo.txt"
    fi
    events[$n]=$(sed -n 's/.*committed \([0-9]*\) events.*/\1/p' "$dir/$n.demo.txt" | head -1)
    disk[$n]=$(du -sb "$dir/$n" | cut -f1)
    # Medians of three: the machine is shared, and one slow run moved a ratio by half.
    runs=(); shares=()
    for _ in 1 2 3; do
        # The baseline just before each replay: raw libsodium verification on every core,
        # the best of three (so a slow moment of the machine cannot flatter the replay).
        raw=$("$bin" bench --phases verify --events 20000 --repeats 3 2>/dev/null | sed -n 's/.* cores \([0-9]*\)\/s.*/\1/p')
        start=$(date +%s.%N)
        "$bin" replay --dir "$dir/$n" --quiet > /dev/null
        t=$(echo "$(date +%s.%N) - $start" | bc)
        runs+=("$t")
        shares+=("$(echo "scale=3; ${events[$n]} / $t / $raw" | bc)")
    done
    replay[$n]=$(printf "%.3f" "$(printf '%s\n' "${runs[@]}" | sort -g | sed -n 2p)")
    share[$n]=$(printf '%s\n' "${shares[@]}" | sort -g | sed -n 2p)
    runs=()
    for _ in 1 2 3; do runs+=("$("$bin" rebuild --dir "$dir/$n" | sed -n 's/.* in \([0-9.]*\) s$/\1/p')"); done
    rebuild[$n]=$(printf '%s\n' "${runs[@]}" | sort -g | sed -n 2p)
    echo "history-bench: $n: replay ${replay[$n]} s, rebuild ${rebuild[$n]} s (medians of 3)" >&2
done

ratio() { echo "scale=2; $1 / $2" | bc; }
er=$(ratio "${events[$large]}" "${events[$small]}")
bound=$(echo "scale=2; $er * 1.15" | bc)
printf '%-28s %14s %14s %8s   %s\n' "" "$small subm." "$large subm." "ratio" "target ≤ $bound (1.15 × events ratio $er)"
printf '%-28s %14s %14s %8s\n' "events committed" "${events[$small]}" "${events[$large]}" "$er"
for what in replay rebuild disk; do
    declare -n m=$what
    r=$(ratio "${m[$large]}" "${m[$small]}")
    verdict=$(echo "$r <= $bound" | bc)
    unit=$([ "$what" = disk ] && echo "bytes" || echo "s")
    printf '%-28s %14s %14s %8s   %s\n' "$what ($unit)" "${m[$small]}" "${m[$large]}" "$r" "$([ "$verdict" = 1 ] && echo met || echo 'NOT met')"
done
printf 'large log: replay %.0f events/s, %s of raw all-core verify measured just before each run (median of 3 pairs; target ≥ 0.80; small log %s)\n' \
    "$(echo "${events[$large]} / ${replay[$large]}" | bc -l)" "${share[$large]}" "${share[$small]}"
printf 'large log: rebuild %.0f events/s (target ≥ 500000/s)\n' "$(echo "${events[$large]} / ${rebuild[$large]}" | bc -l)"
