#!/usr/bin/env bash
# Coverage-guided fuzzing of what a node reads from outside (node/fuzz: protobuf messages,
# catalogs, imports and mappings, signed batches and requesters, directory entries), with LLVM's
# libFuzzer on stable Rust: the sanitizer-coverage instrumentation libFuzzer feeds on is a plain
# codegen option, so no nightly compiler is needed.
#
#   ops/fuzz.sh [SECONDS [TARGET…]]   each target for SECONDS (default 60) from its corpus
#   ops/fuzz.sh --merge TARGET…       fold what a run found into the committed corpus, minimised
#
# Targets run as many at a time as there are cores, or FUZZ_JOBS.
#
# Inputs a run finds go to target/fuzz/found/TARGET, not the repository; a crash is written to
# node/fuzz/crashes/TARGET/ and fails the run: keep the file there, and it is a test
# (node/fuzz/tests/corpus.rs) from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
merge=false
if [ "${1:-}" = "--merge" ]; then merge=true; shift; seconds=0; else seconds=${1:-60}; shift || true; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(proto catalog import batch requester directory)

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# Its own target directory: instrumented artifacts must not mix with the tests'.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-target/fuzz}
# With --target the flags reach only what runs under the fuzzer, not build scripts and macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --quiet --profile fuzz --target "$host" -p tierlink-fuzz --features fuzzing --bins

found=$CARGO_TARGET_DIR/found
if $merge; then
    for target in "${targets[@]}"; do
        mkdir -p "node/fuzz/corpus/$target" "$found/$target"
        "$CARGO_TARGET_DIR/$host/fuzz/$target" -merge=1 "node/fuzz/corpus/$target" "$found/$target" 2>&1 | tail -n 1
    done
    exit 0
fi

# One target's run, its output in found/TARGET.log and its exit status in found/TARGET.status.
fuzz() {
    local target=$1 status=0
    local corpus=node/fuzz/corpus/$target crashes=node/fuzz/crashes/$target
    mkdir -p "$corpus" "$crashes" "$found/$target"
    "$CARGO_TARGET_DIR/$host/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$found/$target" "$corpus" \
        > "$found/$target.log" 2>&1 || status=$?
    echo "$status" > "$found/$target.status"
}

# As many targets at once as there are cores (FUZZ_JOBS): each libFuzzer run is one thread.
jobs=${FUZZ_JOBS:-$(nproc)}
echo "== fuzz ${targets[*]}: ${seconds}s each, $jobs at a time"
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    fuzz "$target" &
done
wait

failed=0
for target in "${targets[@]}"; do
    if [ "$(cat "$found/$target.status")" != 0 ]; then
        failed=1
        tail -n 40 "$found/$target.log"
        echo "fuzz $target: crashed; the input is in node/fuzz/crashes/$target/ (run it: $CARGO_TARGET_DIR/$host/fuzz/$target FILE)"
    else
        grep -E '^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb' "$found/$target.log" |
            sed "s/^/  $target /"
    fi
done
exit $failed
