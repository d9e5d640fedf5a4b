#!/usr/bin/env bash
# Coverage-guided fuzzing of what a node reads from outside (node/fuzz: protobuf messages,
# catalogs, imports and mappings, signed batches and requesters, directory entries), with LLVM's
# libFuzzer on stable Rust: the sanitizer-coverage instrumentation libFuzzer feeds on is a plain
# codegen option, so no nightly compiler is needed.
#
#   ops/fuzz.sh [SECONDS [TARGET…]]   each target for SECONDS (default 60) from its corpus
#   ops/fuzz.sh --merge TARGET…       fold what a run found into the committed corpus, minimised
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
failed=0
for target in "${targets[@]}"; do
    corpus=node/fuzz/corpus/$target crashes=node/fuzz/crashes/$target
    mkdir -p "$corpus" "$crashes" "$found/$target"
    binary=$CARGO_TARGET_DIR/$host/fuzz/$target
    if $merge; then
        "$binary" -merge=1 "$corpus" "$found/$target" 2>&1 | tail -n 1
        continue
    fi
    echo "== fuzz $target: ${seconds}s"
    if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$found/$target" "$corpus" > "$found/$target.log" 2>&1; then
        failed=1
        tail -n 40 "$found/$target.log"
        echo "fuzz $target: crashed; the input is in $crashes/ (run it: $binary $crashes/FILE)"
    else
        grep -E '^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb' "$found/$target.log" |
            sed "s/^/  $target /"
    fi
done
exit $failed
