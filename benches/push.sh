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

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
FLAT_CHECK=${FLAT_CHECK:-1}
FLAT_RUNS=${FLAT_RUNS:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}

die() { printf 'push.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer, got '$SIZE_MIB'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $FLAT_RUNS =~ ^[1-9][0-9]*$ ]] || die "FLAT_RUNS must be a positive integer, got '$FLAT_RUNS'"
[[ $FLAT_CHECK == 0 || $FLAT_CHECK == 1 ]] || die "FLAT_CHECK must be 0 or 1, got '$FLAT_CHECK'"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- tools -------------------------------------------------------------------------------------
apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing Debian package(s): $*"
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null; } \
        || die "cannot install $*"
}
[[ -x /usr/bin/time ]] || apt_install time
command -v age >/dev/null || apt_install age
command -v openssl >/dev/null || die "openssl not found"
command -v cargo >/dev/null || die "cargo not found"

# --- build -------------------------------------------------------------------------------------
log "building: nice -n 10 cargo build --release --bin offsite (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$REPO" && nice -n 10 cargo build --release --bin offsite)
OFFSITE=$CARGO_TARGET_DIR/release/offsite
[[ -x $OFFSITE ]] || die "no binary at $OFFSITE after the build"

# --- work dir ----------------------------------------------------------------------------------
if [[ -n ${BENCH_DIR:-} ]]; then
    mkdir -p "$BENCH_DIR"
    # Only our own subdirectory, not a directory someone handed us.
    WORK=$(cd "$BENCH_DIR" && pwd)/offsite-bench
    cleanup() { rm -rf "${WORK:?}"; }
    rm -rf "$WORK"
    mkdir "$WORK"
else
    WORK=$(mktemp -d /tmp/offsite-bench.XXXXXX)
    cleanup() { rm -rf "${WORK:?}"; }
fi
trap cleanup EXIT
trap 'exit 130' INT TERM
export OFFSITE_CACHE_DIR=$WORK/cache
cd "$WORK"

NAME=input.bin
INPUT=$WORK/$NAME
D1=$WORK/d1 D2=$WORK/d2 D3=$WORK/d3
LOGS=$WORK/logs
mkdir -p "$LOGS"

log "work dir $WORK; making $SIZE_MIB MiB of random data"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$INPUT"

log "offsite keygen -o key.txt"
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
[[ $RECIPIENT == age1* ]] || die "offsite keygen printed '$RECIPIENT', not an age1... recipient"

# --- measuring ---------------------------------------------------------------------------------
# measure LABEL PREP CHECK -- CMD...: runs PREP (untimed), `sync`, then CMD under /usr/bin/time,
# RUNS times (FLAT_RUNS for labels starting with "flat"). CHECK (a function, or `true`) gets the
# run's stdout file. Records the median wall, median user+sys, and the max RSS over the runs.
declare -A WALL CPU RSS
ORDER=()
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

measure() {
    local label=$1 prep=$2 check=$3; shift 4
    local runs=$RUNS i rc walls=() cpus=() maxrss=0
    [[ $label == flat* ]] && runs=$FLAT_RUNS
    for ((i = 1; i <= runs; i++)); do
        "$prep"
        rm -rf "$OFFSITE_CACHE_DIR"
        sync
        local out=$LOGS/$label.$i.out err=$LOGS/$label.$i.err tf=$LOGS/$label.$i.time
        rc=0
        /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$out" 2>"$err" || rc=$?
        if ((rc != 0)); then
            printf '\npush.sh: FAILED (exit %d): %s\n' "$rc" "$*" >&2
            printf -- '--- stdout ---\n' >&2; cat "$out" >&2
            printf -- '--- stderr ---\n' >&2; cat "$err" >&2
            exit "$rc"
        fi
        "$check" "$out" "$err" || { printf 'push.sh: check failed for: %s\n' "$*" >&2; cat "$out" "$err" >&2; exit 1; }
        local wall rss usr sys
        read -r wall rss usr sys < <(tail -n 1 "$tf")
        walls+=("$wall")
        cpus+=("$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')")
        ((rss > maxrss)) && maxrss=$rss
        printf '    %-12s run %d/%d: %6.2f s wall, %6.2f s user, %6.2f s sys, %7.1f MiB RSS\n' \
            "$label" "$i" "$runs" "$wall" "$usr" "$sys" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" >&2
    done
    WALL[$label]=$(printf '%s\n' "${walls[@]}" | median)
    CPU[$label]=$(printf '%s\n' "${cpus[@]}" | median)
    RSS[$label]=$(awk -v k="$maxrss" 'BEGIN { printf "%.1f", k / 1024 }')
    ORDER+=("$label")
}

# Preparations (untimed) and checks.
prep_none() { :; }
prep_pipeline() { rm -f "$WORK/out.age"; }
prep_push() { rm -rf "$D1" "$D2" "$D3"; }
prep_restore() { rm -f "$WORK/restored"; }
prep_age_d() { rm -f "$WORK/restored2"; }
check_ok() { return 0; }
check_push() {
    # Every run must really store, at every destination.
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

echo
echo "offsite push/restore benchmark"
echo "  machine:  $(nproc) CPU(s) (nproc), $(uname -srm)"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  openssl:  $(openssl version 2>&1 | head -n 1)"
echo "  input:    $SIZE_MIB MiB random; $RUNS run(s) per command (median wall/CPU, max RSS); page cache warm"
echo
printf '%-62s %10s %12s %14s\n' "command" "wall s" "user+sys s" "peak RSS MiB"
printf '%-62s %10s %12s %14s\n' "-------" "------" "----------" "------------"
declare -A DESC=(
    [pipeline]="openssl dgst -sha256 FILE && age -r R -o out.age FILE"
    [push-1]="offsite push FILE --to file://D1 -r R"
    [push-3]="offsite push FILE --to file://D1..D3 -r R"
    [restore]="offsite restore file://D1 --latest -o restored -i key"
    [age-d]="age -d -i key -o restored2 D1/NAME.age"
    [flat-push-3]="offsite push (2x: $((SIZE_MIB * 2)) MiB) --to file://D1..D3"
)
for l in "${ORDER[@]}"; do
    printf '%-62s %10.2f %12.2f %14.1f\n' "${DESC[$l]}" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
done
echo
echo "ratios (wall; CPU in brackets):"
echo "  push-1  / pipeline:  $(ratio "${WALL[push-1]}" "${WALL[pipeline]}")  ($(ratio "${CPU[push-1]}" "${CPU[pipeline]}"))"
echo "  push-3  / pipeline:  $(ratio "${WALL[push-3]}" "${WALL[pipeline]}")  ($(ratio "${CPU[push-3]}" "${CPU[pipeline]}"))"
echo "  restore / age -d:    $(ratio "${WALL[restore]}" "${WALL[age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[age-d]}"))"
if [[ $FLAT_CHECK == 1 ]]; then
    echo
    echo "peak RSS flatness (push-3): ${RSS[push-3]} MiB at $SIZE_MIB MiB  vs  ${RSS[flat-push-3]} MiB at $((SIZE_MIB * 2)) MiB ($(ratio "${RSS[flat-push-3]}" "${RSS[push-3]}"))"
fi
