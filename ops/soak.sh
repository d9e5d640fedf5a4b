#!/usr/bin/env bash
# The soak: the fault harness (`tierlink sim faults`) for an hour, then whether every node's
# resident memory and open file descriptors stayed flat. The harness samples each node's VmRSS
# and /proc/PID/fd every few seconds into DIR/samples.csv; a node restarted by the nemesis starts
# afresh, so each node's figures are compared between the first and the last fifth of the run
# (medians), and it counts as flat when memory grew by less than 25 % and descriptors by less
# than 20.
#
#   ops/soak.sh [SECONDS [DIR]]      (default 3600 s, a temporary directory)
#
# Needs target/debug/tierlink (cargo build) or TIERLINK=path; exits non-zero on a violation or
# a node that did not stay flat.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3600}
dir=${2:-$(mktemp -d)}
tierlink=${TIERLINK:-$PWD/target/debug/tierlink}
[ -x "$tierlink" ] || { echo "no $tierlink: run cargo build, or set TIERLINK"; exit 1; }
seed=${SEED:-$(date +%s)}
echo "soak: $seconds s of faults, seed $seed, files in $dir"
start=$(date +%s)
status=0
"$tierlink" sim faults --seconds "$seconds" --seed "$seed" --dir "$dir/run" | tee "$dir/soak.log" || status=$?
echo "soak: the harness took $(( $(date +%s) - start )) s and exited $status"
# Per node: medians of RSS (MiB) and fds over the first and the last fifth of the samples' time.
awk -F, -v span="$seconds" '
    NR == 1 { next }
    { t = $1 + 0; if (t > last) last = t; rows[NR] = $0 }
    END {
        cut1 = last / 5; cut2 = last - last / 5
        for (i in rows) {
            split(rows[i], f, ",")
            t = f[1] + 0; node = f[2]; nodes[node] = 1
            if (t <= cut1) { n = ++early[node]; erss[node, n] = f[4] / 1024; efd[node, n] = f[5] }
            if (t >= cut2) { n = ++late[node]; lrss[node, n] = f[4] / 1024; lfd[node, n] = f[5] }
        }
        printf "%-10s %12s %12s %9s %9s  %s\n", "node", "RSS early", "RSS late", "fds early", "fds late", "flat"
        bad = 0
        for (node in nodes) {
            a = median(erss, node, early[node]); b = median(lrss, node, late[node])
            c = median(efd, node, early[node]); d = median(lfd, node, late[node])
            flat = (b < a * 1.25 && d < c + 20) ? "yes" : "NO"
            if (flat == "NO") bad = 1
            printf "%-10s %9.1f MiB %9.1f MiB %9d %9d  %s\n", node, a, b, c, d, flat
        }
        exit bad
    }
    function median(arr, node, n,    i, j, v, tmp) {
        if (n == 0) return 0
        for (i = 1; i <= n; i++) v[i] = arr[node, i]
        for (i = 2; i <= n; i++) { tmp = v[i]; for (j = i - 1; j >= 1 && v[j] > tmp; j--) v[j + 1] = v[j]; v[j + 1] = tmp }
        return v[int((n + 1) / 2)]
    }' "$dir/run/samples.csv" || status=1
exit "$status"
