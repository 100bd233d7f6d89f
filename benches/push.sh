#!/usr/bin/env bash
# benches/push.sh: wall time, CPU and peak RSS of `offsite push` / `offsite restore` against
# the hand-made pipeline they replace (`openssl dgst -sha256` + `age -r`, and `age -d`), all on
# the same input file in the same run, so the ratios are what to read, not the absolute seconds.
#
# Usage:
#   benches/push.sh
#   SIZE_MIB=256 RUNS=5 FLAT_CHECK=0 benches/push.sh
#
# Environment:
#   SIZE_MIB          size of the random input file in MiB                      (default 1024)
#   RUNS              repetitions of every timed command; the median wall is kept  (default 3)
#   FLAT_CHECK        1: also push-3 a file of 2*SIZE_MIB and print its peak RSS
#                     beside the 1x one, to show memory does not grow with size  (default 1)
#   FLAT_RUNS         repetitions for the 2x flat check                           (default 1)
#   BENCH_DIR         work directory (input, key, stores); created if missing.
#                     Default: a fresh `mktemp -d` under /tmp, removed on exit. If set, the
#                     script works in BENCH_DIR/offsite-bench and removes only that on exit.
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#
# Needs: cargo, /usr/bin/time (Debian package `time`), age, openssl; `time` and `age` are
# installed with apt-get when missing. The page cache is NOT dropped between runs (that needs
# root and is not portable): every run reads a warm input file, so the numbers measure CPU and
# the write path, not cold disk reads. `sync` runs (untimed) before each run so that write-back
# of the previous run's output does not land inside the next run's timing.
#
# offsite's cache (spool journals) is pointed at BENCH_DIR/cache via OFFSITE_CACHE_DIR and wiped
# between runs, so no run resumes from an earlier one. A failing command (non-zero exit, or a
# push that says "already stored") stops the script with its exit code and stderr.

set -euo pipefail
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
FLAT_CHECK=${FLAT_CHECK:-1}
FLAT_RUNS=${FLAT_RUNS:-1}

need_posint SIZE_MIB RUNS FLAT_RUNS
need_01 FLAT_CHECK

# --- tools -------------------------------------------------------------------------------------
apt_need time age
need_cmd openssl
need_cmd cargo

build_offsite
setup_work offsite-bench
D1=$WORK/d1 D2=$WORK/d2 D3=$WORK/d3
make_input_and_key

# --- measuring (measure in lib.sh) -------------------------------------------------------------
# Preparations (untimed) and checks.
prep_pipeline() { rm -f "$WORK/out.age"; }
prep_push() { rm -rf "$D1" "$D2" "$D3"; }
prep_age_d() { rm -f "$WORK/restored2"; }
# Replaces lib.sh's check_push: every run must really store, at every destination.
check_push() {
    if grep -q 'already stored\|resumed from the spool' "$1"; then
        echo "push.sh: push did not do the work (already stored / resumed)" >&2; return 1
    fi
    grep -Eq '^([0-9]+) of \1 destinations hold the archive\.$' "$1"
}

log "timing, $RUNS run(s) each, input $SIZE_MIB MiB (page cache warm)"

log "a. pipeline: openssl dgst -sha256 + age -r"
measure pipeline prep_pipeline check_ok -- \
    sh -c 'openssl dgst -sha256 "$1" >/dev/null && age -r "$2" -o "$3" "$1"' sh "$INPUT" "$RECIPIENT" "$WORK/out.age"
rm -f "$WORK/out.age"

log "b. offsite push, 1 destination"
measure push-1 prep_push check_push -- \
    "$OFFSITE" push "$INPUT" --to "file://$D1" -r "$RECIPIENT"

log "c. offsite push, 3 destinations"
measure push-3 prep_push check_push -- \
    "$OFFSITE" push "$INPUT" --to "file://$D1" --to "file://$D2" --to "file://$D3" -r "$RECIPIENT"
# D1 now holds the archive the last push-3 stored; restore reads it.
rm -rf "$D2" "$D3"
[[ -f $D1/$NAME.age ]] || die "expected $D1/$NAME.age after push"

log "d. offsite restore vs age -d"
measure restore prep_restore check_ok -- \
    "$OFFSITE" restore "file://$D1" --latest -o "$WORK/restored" -i "$WORK/key.txt"
measure age-d prep_age_d check_ok -- \
    age -d -i "$WORK/key.txt" -o "$WORK/restored2" "$D1/$NAME.age"
cmp -s "$INPUT" "$WORK/restored" || die "offsite restore output differs from the input"
cmp -s "$INPUT" "$WORK/restored2" || die "age -d output differs from the input"
rm -f "$WORK/restored" "$WORK/restored2"
rm -rf "$D1"

if [[ $FLAT_CHECK == 1 ]]; then
    log "flat check: offsite push, 3 destinations, $((SIZE_MIB * 2)) MiB input"
    rm -f "$INPUT"
    head -c $((SIZE_MIB * 2 * 1024 * 1024)) /dev/urandom >"$INPUT"
    measure flat-push-3 prep_push check_push -- \
        "$OFFSITE" push "$INPUT" --to "file://$D1" --to "file://$D2" --to "file://$D3" -r "$RECIPIENT"
    rm -rf "$D1" "$D2" "$D3"
fi

# --- report ------------------------------------------------------------------------------------
echo
echo "offsite push/restore benchmark"
machine_line
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  openssl:  $(openssl version 2>&1 | head -n 1)"
input_line
declare -A DESC=(
    [pipeline]="openssl dgst -sha256 FILE && age -r R -o out.age FILE"
    [push-1]="offsite push FILE --to file://D1 -r R"
    [push-3]="offsite push FILE --to file://D1..D3 -r R"
    [restore]="offsite restore file://D1 --latest -o restored -i key"
    [age-d]="age -d -i key -o restored2 D1/NAME.age"
    [flat-push-3]="offsite push (2x: $((SIZE_MIB * 2)) MiB) --to file://D1..D3"
)
print_table
echo
echo "ratios (wall; CPU in brackets):"
echo "  push-1  / pipeline:  $(ratios push-1 pipeline)"
echo "  push-3  / pipeline:  $(ratios push-3 pipeline)"
echo "  restore / age -d:    $(ratios restore age-d)"
if [[ $FLAT_CHECK == 1 ]]; then
    echo
    echo "peak RSS flatness (push-3): ${RSS[push-3]} MiB at $SIZE_MIB MiB  vs  ${RSS[flat-push-3]} MiB at $((SIZE_MIB * 2)) MiB ($(ratio "${RSS[flat-push-3]}" "${RSS[push-3]}"))"
fi
