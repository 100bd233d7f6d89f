#!/usr/bin/env bash
# benches/azure.sh: wall time, CPU and peak RSS of `offsite push` / `offsite restore` to and from
# Azure Blob Storage (Azurite on loopback, data on disk) against rclone, the stock client people
# use instead, all on the same input file against the same server in the same run, so the ratios
# are what to read, not the absolute seconds (Azurite is single-threaded Node.js on loopback, not
# Azure: no network latency, no throttling). offsite encrypts (age) and hashes (SHA-256 of
# plaintext and ciphertext, an MD5 per block); `rclone copy` uploads the plaintext unencrypted,
# `age -r | rclone rcat` encrypts on the way. Restore is compared with `rclone copy` down +
# `age -d`, and `rclone cat | age -d`.
#
# Usage:
#   benches/azure.sh
#   SIZE_MIB=256 RUNS=5 PIN=0 benches/azure.sh
#
# Environment:
#   SIZE_MIB          size of the random input file in MiB                      (default 1024)
#   RUNS              repetitions of every timed command; the median wall is kept  (default 3)
#   PIN               1: Azurite on CPU 1 (`taskset -c 1`), every client on CPU 0
#                     (`taskset -c 0`), so the server's CPU does not eat into the
#                     client's; needs 2+ CPUs, else falls back to 0 with a
#                     warning. 0: no pinning.                                (default 1)
#   BENCH_DIR         work directory (input, key, Azurite's data, cache); created if missing.
#                     Default: a fresh `mktemp -d` under /tmp, removed on exit. If set, the
#                     script works in BENCH_DIR/offsite-azure-bench and removes only that on exit.
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps Azurite (default $HOME/.cache/offsite/tools)
#
# Needs: cargo, python3 and curl (the server's port and start-up, as tests/emulators/start.sh),
# node/npm (Azurite), /usr/bin/time (Debian `time`), age, taskset (util-linux), rclone. `time`,
# `age` and `rclone` are installed with apt-get when missing; Azurite with
# tests/emulators/install.sh. Azurite runs as tests/emulators/start.sh runs it (--loose
# --skipApiVersionCheck --disableTelemetry, blob host 127.0.0.1, a free port, --location in the
# work dir) and is killed on exit.
#
# Credentials are Azurite's published development account and key (devstoreaccount1; not a
# secret): offsite reads them from AZURE_STORAGE_CONNECTION_STRING (whose BlobEndpoint points at
# Azurite), rclone from its azureblob backend's use_emulator=true with endpoint= set to Azurite's
# port. The other AZURE_STORAGE_* variables are unset.
#
# Every upload run goes to a fresh container (created untimed with `rclone mkdir`, deleted
# untimed after the run with `rclone purge`), so nothing is ever "already stored"; a push that
# says so, or resumes from a spool, stops the script. offsite's cache (spool) is BENCH_DIR/cache
# via OFFSITE_CACHE_DIR and wiped between runs. Restores read the archive of the last push run
# and are compared with the input (cmp). The page cache is NOT dropped (needs root): the input is
# read warm. `sync` runs (untimed) before each run. A failing command stops the script with its
# exit code and stderr.
#
# Peak RSS is GNU time's %M: for `bash -c 'A | B'` that is the largest single process of the
# pipeline, not their sum. CPU (user+sys) includes every child the command waited for. Server
# CPU is read from /proc for the Azurite (node) process around each run and printed separately.

set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}
TOOLS=${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}

die() { printf 'azure.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer, got '$SIZE_MIB'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1, got '$PIN'"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- tools -------------------------------------------------------------------------------------
apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing Debian package(s): $*"
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
[[ -x /usr/bin/time ]] || apt_install time || die "cannot install time"
command -v age >/dev/null || apt_install age || die "cannot install age"
command -v rclone >/dev/null || apt_install rclone || die "cannot install rclone"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
command -v cargo >/dev/null || die "cargo not found"

log "tests/emulators/install.sh (Azurite under $TOOLS)"
OFFSITE_TOOLS_DIR=$TOOLS "$REPO/tests/emulators/install.sh"
AZURITE=$(ls -d "$TOOLS"/azurite-*/node_modules/.bin/azurite-blob 2>/dev/null | sort -V | tail -n 1)
[[ -n $AZURITE && -x $AZURITE ]] || die "no azurite-blob under $TOOLS after tests/emulators/install.sh"

if [[ $PIN == 1 && $(nproc) -lt 2 ]]; then
    log "WARNING: PIN=1 needs 2 CPUs, nproc says $(nproc); running unpinned"
    PIN=0
fi
if [[ $PIN == 1 ]]; then
    SERVER_PIN=(taskset -c 1)
    CLIENT_PIN=(taskset -c 0)
    PIN_MODE="pinned: Azurite on CPU 1 (taskset -c 1), clients on CPU 0 (taskset -c 0)"
else
    SERVER_PIN=()
    CLIENT_PIN=()
    PIN_MODE="unpinned: server and clients share all $(nproc) CPU(s)"
fi
log "CPU mode: $PIN_MODE"

# --- build -------------------------------------------------------------------------------------
log "building: nice -n 10 cargo build --release --bin offsite (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$REPO" && nice -n 10 cargo build --release --bin offsite)
OFFSITE=$CARGO_TARGET_DIR/release/offsite
[[ -x $OFFSITE ]] || die "no binary at $OFFSITE after the build"

# --- work dir ----------------------------------------------------------------------------------
SPID=
stop_server() {
    if [[ -n $SPID ]]; then
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SPID=
    fi
}
if [[ -n ${BENCH_DIR:-} ]]; then
    mkdir -p "$BENCH_DIR"
    # Only our own subdirectory, not a directory someone handed us.
    WORK=$(cd "$BENCH_DIR" && pwd)/offsite-azure-bench
    rm -rf "$WORK"
    mkdir "$WORK"
else
    WORK=$(mktemp -d /tmp/offsite-azure-bench.XXXXXX)
fi
cleanup() { stop_server; rm -rf "${WORK:?}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export OFFSITE_CACHE_DIR=$WORK/cache
cd "$WORK"

NAME=input.bin
INPUT=$WORK/$NAME
AZDIR=$WORK/azurite
LOGS=$WORK/logs
mkdir -p "$LOGS" "$AZDIR"

# --- server ------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
ACCOUNT=devstoreaccount1
EP=http://127.0.0.1:$PORT/$ACCOUNT
log "starting Azurite on $EP (data in $AZDIR)"
# --loose and --skipApiVersionCheck: offsite's SDK sends an API version Azurite does not know;
# --disableTelemetry: it phones home by default (as tests/emulators/start.sh).
"${SERVER_PIN[@]}" "$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$AZDIR" \
    --loose --skipApiVersionCheck --disableTelemetry >"$LOGS/azurite.log" 2>&1 &
SPID=$!
for ((i = 0; i < 300; i++)); do
    curl -s -o /dev/null "$EP?comp=list" && break
    kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/azurite.log" >&2; die "Azurite exited at start-up"; }
    sleep 0.1
done
curl -s -o /dev/null "$EP?comp=list" || { cat "$LOGS/azurite.log" >&2; die "Azurite did not answer on $EP"; }

# Azurite's published development account key (the same in every Azurite; not a secret).
DEV_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$DEV_KEY;BlobEndpoint=$EP;"
unset AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN AZURE_STORAGE_BLOB_ENDPOINT AZURE_STORAGE_ACCOUNT
# rclone's remote from RCLONE_CONFIG_*; no config file is read or written. use_emulator=true
# signs with the same development account; endpoint= points it at this Azurite's port.
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_OFFSITEBENCH_TYPE=azureblob RCLONE_CONFIG_OFFSITEBENCH_USE_EMULATOR=true \
    RCLONE_CONFIG_OFFSITEBENCH_ENDPOINT=$EP
RCLONE_REMOTE=offsitebench

# --- input and key -----------------------------------------------------------------------------
log "work dir $WORK; making $SIZE_MIB MiB of random data"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$INPUT"

log "offsite keygen -o key.txt"
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
[[ $RECIPIENT == age1* ]] || die "offsite keygen printed '$RECIPIENT', not an age1... recipient"

# --- measuring ---------------------------------------------------------------------------------
# measure LABEL PREP CHECK -- CMD...: for run i of RUNS, sets BUCKET (the container) to LABEL-i
# (lower case), runs PREP (untimed), wipes offsite's cache, `sync`, then CMD under /usr/bin/time
# (pinned to the client CPU when PIN=1), with every literal @BUCKET@ in CMD's arguments replaced
# by BUCKET. CHECK (a function, or check_ok) gets the run's stdout and stderr files. Records the
# median wall, the median user+sys, the max RSS over the runs, and the median server CPU.
declare -A WALL CPU RSS SCPU
ORDER=()
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
CLK_TCK=$(getconf CLK_TCK)
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SPID/stat"; }

BUCKET=
measure() {
    local label=$1 prep=$2 check=$3; shift 4
    local i rc walls=() cpus=() scpus=() maxrss=0 a cmd
    for ((i = 1; i <= RUNS; i++)); do
        BUCKET=$label-$i
        "$prep"
        rm -rf "$OFFSITE_CACHE_DIR"
        sync
        cmd=()
        for a in "$@"; do cmd+=("${a//@BUCKET@/$BUCKET}"); done
        local out=$LOGS/$label.$i.out err=$LOGS/$label.$i.err tf=$LOGS/$label.$i.time
        kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/azurite.log" >&2; die "Azurite is no longer running"; }
        local t0 t1
        t0=$(server_ticks)
        rc=0
        "${CLIENT_PIN[@]}" /usr/bin/time -f '%e %M %U %S' -o "$tf" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
        t1=$(server_ticks)
        if ((rc != 0)); then
            printf '\nazure.sh: FAILED (exit %d): %s\n' "$rc" "${cmd[*]}" >&2
            printf -- '--- stdout ---\n' >&2; cat "$out" >&2
            printf -- '--- stderr ---\n' >&2; cat "$err" >&2
            exit "$rc"
        fi
        "$check" "$out" "$err" || { printf 'azure.sh: check failed for: %s\n' "${cmd[*]}" >&2; cat "$out" "$err" >&2; exit 1; }
        local wall rss usr sys scpu
        read -r wall rss usr sys < <(tail -n 1 "$tf")
        scpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
        walls+=("$wall")
        cpus+=("$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')")
        scpus+=("$scpu")
        ((rss > maxrss)) && maxrss=$rss
        printf '    %-12s run %d/%d: %6.2f s wall, %6.2f s user, %6.2f s sys, %7.1f MiB RSS, server %6.2f s CPU\n' \
            "$label" "$i" "$RUNS" "$wall" "$usr" "$sys" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$scpu" >&2
        "${after:-:}"
    done
    WALL[$label]=$(printf '%s\n' "${walls[@]}" | median)
    CPU[$label]=$(printf '%s\n' "${cpus[@]}" | median)
    SCPU[$label]=$(printf '%s\n' "${scpus[@]}" | median)
    RSS[$label]=$(awk -v k="$maxrss" 'BEGIN { printf "%.1f", k / 1024 }')
    ORDER+=("$label")
}

# Preparations (untimed) and checks.
mk_container() { rclone mkdir "$RCLONE_REMOTE:$1" >"$LOGS/mk.$1.out" 2>&1 || { cat "$LOGS/mk.$1.out" >&2; die "rclone mkdir $RCLONE_REMOTE:$1 failed"; }; }
rm_container() { rclone purge "$RCLONE_REMOTE:$1" >"$LOGS/rm.$1.out" 2>&1 || { cat "$LOGS/rm.$1.out" >&2; die "rclone purge $RCLONE_REMOTE:$1 failed"; }; }
prep_bucket() { mk_container "$BUCKET"; }
prep_restore() { rm -f "$WORK/restored"; }
prep_restore2() { rm -rf "$WORK/restored2" "$WORK/dl"; }
check_ok() { return 0; }
check_push() {
    # Every run must really store.
    if grep -q 'already stored\|resumed from the spool' "$1" "$2"; then
        echo "azure.sh: push did not do the work (already stored / resumed)" >&2; return 1
    fi
    grep -Eq '^1 of 1 destinations hold the archive\.$' "$1"
}
# Size of a blob in bytes (empty output when there is none).
object_size() { rclone lsf --format s "$RCLONE_REMOTE:$BUCKET/$1" 2>/dev/null; }
check_plain_object() {
    local key=$1 size
    size=$(object_size "$key")
    [[ -n $size ]] || { echo "azure.sh: no blob $BUCKET/$key" >&2; return 1; }
    [[ $size == $((SIZE_MIB * 1024 * 1024)) ]] || { echo "azure.sh: $BUCKET/$key has $size bytes, expected $((SIZE_MIB * 1024 * 1024))" >&2; return 1; }
}
check_enc_object() {
    local key=$1 size
    size=$(object_size "$key")
    [[ -n $size ]] || { echo "azure.sh: no blob $BUCKET/$key" >&2; return 1; }
    ((size > SIZE_MIB * 1024 * 1024)) || { echo "azure.sh: $BUCKET/$key has only $size bytes" >&2; return 1; }
}
check_rclone() { check_plain_object "rc/$NAME"; }
check_age_rcat() { check_enc_object "rc/$NAME.age"; }
check_push_obj() { check_push "$@" && check_enc_object "app/$NAME.age"; }
# After each upload run: drop the container (untimed) so Azurite's disk does not fill up,
# except the last push container, which the restores read.
after_drop() { rm_container "$BUCKET"; }
after_push() { [[ $BUCKET == "push-$RUNS" ]] || rm_container "$BUCKET"; }

log "timing, $RUNS run(s) each, input $SIZE_MIB MiB (page cache warm), server $EP"

log "a. offsite push to az://"
after=after_push measure push prep_bucket check_push_obj -- \
    "$OFFSITE" push "$INPUT" --to "az://$ACCOUNT/@BUCKET@/app" -r "$RECIPIENT"
PUSHED=push-$RUNS

log "b. rclone copy (plaintext, no encryption)"
after=after_drop measure rclone prep_bucket check_rclone -- \
    rclone copy "$INPUT" "$RCLONE_REMOTE:@BUCKET@/rc"

log "c. age -r R FILE | rclone rcat (encrypted on the way)"
after=after_drop measure age-rcat prep_bucket check_age_rcat -- \
    bash -c 'set -euo pipefail; age -r "$1" "$2" | rclone rcat "$3"' \
    bash "$RECIPIENT" "$INPUT" "$RCLONE_REMOTE:@BUCKET@/rc/$NAME.age"

log "d. offsite restore vs rclone copy + age -d and rclone cat | age -d (all from $PUSHED/app)"
after=: measure restore prep_restore check_ok -- \
    "$OFFSITE" restore "az://$ACCOUNT/$PUSHED/app" --latest -o "$WORK/restored" -i "$WORK/key.txt"
cmp -s "$INPUT" "$WORK/restored" || die "offsite restore output differs from the input"
after=: measure rclone-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; rclone copy "$1" "$2" && age -d -i "$3" -o "$4" "$2/$5"' \
    bash "$RCLONE_REMOTE:$PUSHED/app/$NAME.age" "$WORK/dl" "$WORK/key.txt" "$WORK/restored2" "$NAME.age"
cmp -s "$INPUT" "$WORK/restored2" || die "rclone copy + age -d output differs from the input"
after=: measure rcat-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; rclone cat "$1" | age -d -i "$2" >"$3"' \
    bash "$RCLONE_REMOTE:$PUSHED/app/$NAME.age" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "rclone cat | age -d output differs from the input"
rm -rf "$WORK/restored" "$WORK/restored2" "$WORK/dl"
rm_container "$PUSHED"
SERVER_HWM=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SPID/status")

# --- report ------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
per_gib() { awk -v c="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.2f", c / (m / 1024) }'; }
AZ_VERSION=$(basename "$(dirname "$(dirname "$(dirname "$AZURITE")")")")

echo
echo "offsite Azure push/restore benchmark (Azurite on loopback, data on disk)"
echo "  machine:  $(nproc) CPU(s) (nproc), $(uname -srm)"
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   $AZ_VERSION (node $(node --version 2>/dev/null)); peak RSS ${SERVER_HWM} MiB"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  input:    $SIZE_MIB MiB random; $RUNS run(s) per command (median wall/CPU, max RSS); page cache warm"
echo
printf '%-62s %10s %12s %14s\n' "command" "wall s" "user+sys s" "peak RSS MiB"
printf '%-62s %10s %12s %14s\n' "-------" "------" "----------" "------------"
declare -A DESC=(
    [push]="offsite push FILE --to az://devstoreaccount1/C/app -r R"
    [rclone]="rclone copy FILE offsitebench:C/rc      (no encryption)"
    [age-rcat]="age -r R FILE | rclone rcat offsitebench:C/rc/NAME.age"
    [restore]="offsite restore az://../C/app --latest -o OUT -i key"
    [rclone-age-d]="rclone copy ..C/app/NAME.age DL && age -d -o OUT2 DL/.."
    [rcat-age-d]="rclone cat offsitebench:C/app/NAME.age | age -d > OUT2"
)
for l in "${ORDER[@]}"; do
    printf '%-62s %10.2f %12.2f %14.1f\n' "${DESC[$l]}" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
done
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / rclone copy:                $(ratio "${WALL[push]}" "${WALL[rclone]}")  ($(ratio "${CPU[push]}" "${CPU[rclone]}"))"
echo "  push    / (age | rclone rcat):        $(ratio "${WALL[push]}" "${WALL[age-rcat]}")  ($(ratio "${CPU[push]}" "${CPU[age-rcat]}"))"
echo "  restore / (rclone copy && age -d):    $(ratio "${WALL[restore]}" "${WALL[rclone-age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[rclone-age-d]}"))"
echo "  restore / (rclone cat | age -d):      $(ratio "${WALL[restore]}" "${WALL[rcat-age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[rcat-age-d]}"))"
echo
echo "client CPU-seconds per GiB (user+sys), and the server's (Azurite) CPU-seconds per GiB:"
for l in "${ORDER[@]}"; do
    printf '  %-12s client %6s s/GiB   server %6s s/GiB\n' "$l" "$(per_gib "${CPU[$l]}")" "$(per_gib "${SCPU[$l]}")"
done
echo
echo "notes: offsite encrypts with age and hashes (plaintext and ciphertext SHA-256, an MD5"
echo "  per block) while rclone copy uploads the plaintext as is; age | rclone rcat encrypts"
echo "  but checks nothing beyond rclone's own. Restore's comparisons decrypt (age -d) but"
echo "  check no hash beyond age's own authentication; 'rclone copy && age -d' writes the"
echo "  ciphertext to disk first. Peak RSS of a pipeline is its largest process, not the"
echo "  sum (GNU time %M)."
