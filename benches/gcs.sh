#!/usr/bin/env bash
# benches/gcs.sh: wall time, CPU and peak RSS of `offsite push` / `offsite restore` to and from a
# Google Cloud Storage server (the project's GCS emulator, tests/emulators/gcs_emulator.py, on
# loopback) against what people use instead, all on the same input file against the same server
# in the same run, so the ratios are what to read, not the absolute seconds: the emulator is
# Python and keeps every object in memory, so it is the bottleneck and its speed says nothing
# about GCS's.
#
# Baselines:
#   upload    `curl -T FILE` as one simple upload (uploadType=media, plaintext, streamed from the
#             file), `age -r R FILE | curl -T -` (the same, encrypted on the way, chunked), and
#             `rclone copy` (plaintext) when rclone can upload to this emulator. A probe at
#             start-up tries it (a 1 MiB and a 17 MiB file, read back and compared) and, when it
#             fails, prints why and leaves rclone out of the upload comparison. rclone's Go API
#             client takes two paths, and gcs_emulator.py serves both as GCS does (checked by
#             gcs_emulator_selftest.py): below 16 MiB one multipart/related upload whose media
#             part has no header lines (RFC 2046: the body starts right after the part's blank
#             line); from 16 MiB a resumable session in 16 MiB chunks sent with
#             `X-GUploader-No-308: yes`, answered 200 + `X-Http-Status-Code-Override: 308`
#             between chunks (a bare 308 makes the client fail: "unexpected 308 response status
#             code"). Debian's rclone 1.60 passes the probe against this launcher.
#   restore   `curl ...?alt=media | age -d` and `rclone cat | age -d` (rclone downloads from the
#             emulator fine), both of the object offsite pushed.
#
# Usage:
#   benches/gcs.sh
#   SIZE_MIB=512 RUNS=5 PIN=0 benches/gcs.sh
#
# Environment:
#   SIZE_MIB          size of the random input file in MiB                      (default 256)
#   RUNS              repetitions of every timed command; the median wall is kept  (default 3)
#   PIN               1: emulator on CPU 1 (`taskset -c 1`), every client on CPU 0
#                     (`taskset -c 0`), so the server's CPU does not eat into the
#                     client's; needs 2+ CPUs, else falls back to 0 with a
#                     warning. 0: no pinning.                                (default 1)
#   BENCH_DIR         work directory (input, key, cache, logs); created if missing.
#                     Default: a fresh `mktemp -d` under /tmp, removed on exit. If set, the
#                     script works in BENCH_DIR/offsite-gcs-bench and removes only that on exit.
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps the emulator
#                     (default $HOME/.cache/offsite/tools)
#
# Needs: cargo, python3 and curl (the server's port, start-up, buckets and uploads), npm only if
# tests/emulators/install.sh has Azurite still to install, /usr/bin/time (Debian `time`), age,
# taskset (util-linux), rclone. `time`, `age` and `rclone` are installed with apt-get when
# missing; the emulator with tests/emulators/install.sh, and it is started as
# tests/emulators/start.sh does (the venv's python running gcs_emulator.py), in memory, and
# killed on exit. It takes no credentials; offsite's `endpoint=` sends none.
#
# Every upload run goes to a fresh bucket (created untimed with POST /storage/v1/b, emptied and
# deleted untimed after the run, so the emulator's memory does not grow), so nothing is ever
# "already stored"; a push that says so, or resumes from a spool, stops the script. offsite's
# cache (spool) is BENCH_DIR/cache via OFFSITE_CACHE_DIR and wiped between runs. Restores read
# the archive of the last push run and are compared with the input (cmp). The page cache is NOT
# dropped (needs root): the input is read warm. `sync` runs (untimed) before each run. A failing
# command stops the script with its exit code and stderr.
#
# Peak RSS is GNU time's %M: for `bash -c 'A | B'` that is the largest single process of the
# pipeline, not their sum. CPU (user+sys) includes every child the command waited for. Server
# CPU is read from /proc for the emulator process around each run and printed separately.

set -euo pipefail

SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}
TOOLS=${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}

die() { printf 'gcs.sh: error: %s\n' "$*" >&2; exit 1; }
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

log "tests/emulators/install.sh (gcp-storage-emulator under $TOOLS)"
OFFSITE_TOOLS_DIR=$TOOLS "$REPO/tests/emulators/install.sh"
GCS_PY=$(ls -d "$TOOLS"/gcp-storage-emulator-*/bin/python 2>/dev/null | sort -V | tail -n 1)
[[ -n $GCS_PY && -x $GCS_PY ]] || die "no gcp-storage-emulator venv under $TOOLS after tests/emulators/install.sh"
GCS_EMU=$REPO/tests/emulators/gcs_emulator.py
[[ -f $GCS_EMU ]] || die "no $GCS_EMU"

if [[ $PIN == 1 && $(nproc) -lt 2 ]]; then
    log "WARNING: PIN=1 needs 2 CPUs, nproc says $(nproc); running unpinned"
    PIN=0
fi
if [[ $PIN == 1 ]]; then
    SERVER_PIN=(taskset -c 1)
    CLIENT_PIN=(taskset -c 0)
    PIN_MODE="pinned: emulator on CPU 1 (taskset -c 1), clients on CPU 0 (taskset -c 0)"
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
    WORK=$(cd "$BENCH_DIR" && pwd)/offsite-gcs-bench
    rm -rf "$WORK"
    mkdir "$WORK"
else
    WORK=$(mktemp -d /tmp/offsite-gcs-bench.XXXXXX)
fi
cleanup() { stop_server; rm -rf "${WORK:?}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export OFFSITE_CACHE_DIR=$WORK/cache
cd "$WORK"

NAME=input.bin
INPUT=$WORK/$NAME
LOGS=$WORK/logs
mkdir -p "$LOGS"

# --- server ------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
EP=http://127.0.0.1:$PORT
log "starting the GCS emulator on $EP (in memory): $GCS_PY $GCS_EMU"
"${SERVER_PIN[@]}" "$GCS_PY" "$GCS_EMU" --host 127.0.0.1 --port "$PORT" >"$LOGS/gcs.log" 2>&1 &
SPID=$!
for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "$EP/" && break
    kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/gcs.log" >&2; die "the GCS emulator exited at start-up"; }
    sleep 0.1
done
curl -s -o /dev/null "$EP/" || { cat "$LOGS/gcs.log" >&2; die "the GCS emulator did not answer on $EP"; }

# rclone's remote from RCLONE_CONFIG_*; no config file is read or written.
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_OFFSITEBENCH_TYPE="google cloud storage" RCLONE_CONFIG_OFFSITEBENCH_ANONYMOUS=true \
    RCLONE_CONFIG_OFFSITEBENCH_ENDPOINT=$EP
RCLONE_REMOTE=offsitebench
unset STORAGE_EMULATOR_HOST GOOGLE_APPLICATION_CREDENTIALS

# Bucket helpers (untimed).
mk_bucket_named() {
    curl -sS -f -o "$LOGS/mb.$1.out" -X POST "$EP/storage/v1/b?project=test" \
        -H 'content-type: application/json' -d "{\"name\":\"$1\"}" \
        || { cat "$LOGS/mb.$1.out" >&2 2>/dev/null; die "cannot create bucket $1"; }
}
rm_bucket() {
    # Every object (page by page), then the bucket.
    python3 - "$EP" "$1" >"$LOGS/rb.$1.out" 2>&1 <<'EOF' || { cat "$LOGS/rb.$1.out" >&2; die "cannot delete bucket $1"; }
import json, sys, urllib.parse, urllib.request
ep, bucket = sys.argv[1], sys.argv[2]
base = ep + "/storage/v1/b/" + urllib.parse.quote(bucket, safe="")
def call(method, url):
    with urllib.request.urlopen(urllib.request.Request(url, method=method)) as r:
        return r.read()
while True:
    page = json.loads(call("GET", base + "/o?maxResults=1000"))
    items = page.get("items") or []
    if not items:
        break
    for item in items:
        call("DELETE", base + "/o/" + urllib.parse.quote(item["name"], safe=""))
call("DELETE", base)
EOF
}
# Size of an object in bytes (fails if there is none).
object_size() {
    local b=$1 key=$2
    curl -sS -f "$EP/storage/v1/b/$b/o/${key//\//%2F}" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])'
}

# --- input and key -----------------------------------------------------------------------------
log "work dir $WORK; making $SIZE_MIB MiB of random data"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$INPUT"

log "offsite keygen -o key.txt"
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
[[ $RECIPIENT == age1* ]] || die "offsite keygen printed '$RECIPIENT', not an age1... recipient"

# --- can rclone upload to this emulator? -------------------------------------------------------
# Two sizes because rclone's Go client takes two code paths: one multipart/related request below
# 16 MiB, a resumable session in 16 MiB chunks from there. Each probe must exit 0 and read back
# byte for byte.
RCLONE_UP=1
RCLONE_WHY=()
log "probing rclone uploads to the emulator (1 MiB and 17 MiB)"
mk_bucket_named rclone-probe
for mib in 1 17; do
    head -c $((mib * 1024 * 1024)) /dev/urandom >"$WORK/probe-$mib.bin"
    rc=0
    timeout 120 rclone copy --retries 1 --low-level-retries 1 "$WORK/probe-$mib.bin" "$RCLONE_REMOTE:rclone-probe/p" \
        >"$LOGS/probe-$mib.out" 2>&1 || rc=$?
    if ((rc != 0)); then
        RCLONE_UP=0
        RCLONE_WHY+=("$mib MiB: rclone copy exited $rc: $(grep -E 'ERROR|Failed' "$LOGS/probe-$mib.out" | tail -n 1 | sed 's/^[0-9/]* [0-9:]* //')")
    elif ! curl -sS -f "$EP/storage/v1/b/rclone-probe/o/p%2Fprobe-$mib.bin?alt=media" | cmp -s - "$WORK/probe-$mib.bin"; then
        RCLONE_UP=0
        RCLONE_WHY+=("$mib MiB: rclone copy exited 0 but the stored object differs from the file")
    fi
    rm -f "$WORK/probe-$mib.bin"
done
rm_bucket rclone-probe
RCLONE_NOTE=()
if [[ $RCLONE_UP == 1 ]]; then
    log "rclone can upload to the emulator: it is in the upload comparison"
else
    RCLONE_NOTE+=("rclone copy cannot upload to this emulator, so it is left out of the upload comparison:")
    for w in "${RCLONE_WHY[@]}"; do RCLONE_NOTE+=("    $w"); done
    if printf '%s\n' "${RCLONE_WHY[@]}" | grep -q 'sizes differ'; then
        RCLONE_NOTE+=("  below 16 MiB rclone (Go API client) sends one multipart/related upload whose media part"
            "  has no header lines (boundary, CRLF, empty line, data); a stored object of another size"
            "  means gcs_emulator.py's parse_multipart_related mis-split it (see"
            "  gcs_emulator_selftest.py, multipart_media_part_without_headers).")
    fi
    if printf '%s\n' "${RCLONE_WHY[@]}" | grep -q 'unexpected 308'; then
        RCLONE_NOTE+=("  from 16 MiB it uses a resumable session and sends each 16 MiB chunk with"
            "  'X-GUploader-No-308: yes', expecting 200 + 'X-Http-Status-Code-Override: 308' between"
            "  chunks as GCS answers; a bare 308 Resume Incomplete makes it fail (see"
            "  gcs_emulator_selftest.py, resumable_upload_no_308).")
    fi
    RCLONE_NOTE+=("  rclone downloads from the emulator work: 'rclone cat | age -d' stays a restore baseline.")
    printf '%s\n' "${RCLONE_NOTE[@]}" >&2
fi

# --- measuring ---------------------------------------------------------------------------------
# measure LABEL PREP CHECK -- CMD...: for run i of RUNS, sets BUCKET to LABEL-i (lower case),
# runs PREP (untimed), wipes offsite's cache, `sync`, then CMD under /usr/bin/time (pinned to the
# client CPU when PIN=1), with every literal @BUCKET@ in CMD's arguments replaced by BUCKET.
# CHECK (a function, or check_ok) gets the run's stdout and stderr files. Records the median
# wall, the median user+sys, the max RSS over the runs, and the median server CPU.
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
        kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/gcs.log" >&2; die "the GCS emulator is no longer running"; }
        local t0 t1
        t0=$(server_ticks)
        rc=0
        "${CLIENT_PIN[@]}" /usr/bin/time -f '%e %M %U %S' -o "$tf" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
        t1=$(server_ticks)
        if ((rc != 0)); then
            printf '\ngcs.sh: FAILED (exit %d): %s\n' "$rc" "${cmd[*]}" >&2
            printf -- '--- stdout ---\n' >&2; cat "$out" >&2
            printf -- '--- stderr ---\n' >&2; cat "$err" >&2
            exit "$rc"
        fi
        "$check" "$out" "$err" || { printf 'gcs.sh: check failed for: %s\n' "${cmd[*]}" >&2; cat "$out" "$err" >&2; exit 1; }
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
prep_bucket() { mk_bucket_named "$BUCKET"; }
prep_restore() { rm -f "$WORK/restored"; }
prep_restore2() { rm -f "$WORK/restored2"; }
check_ok() { return 0; }
check_push() {
    # Every run must really store.
    if grep -q 'already stored\|resumed from the spool' "$1" "$2"; then
        echo "gcs.sh: push did not do the work (already stored / resumed)" >&2; return 1
    fi
    grep -Eq '^1 of 1 destinations hold the archive\.$' "$1"
}
check_plain_object() {
    local key=$1 size
    size=$(object_size "$BUCKET" "$key") || { echo "gcs.sh: no object gs://$BUCKET/$key" >&2; return 1; }
    [[ $size == $((SIZE_MIB * 1024 * 1024)) ]] || { echo "gcs.sh: gs://$BUCKET/$key has $size bytes, expected $((SIZE_MIB * 1024 * 1024))" >&2; return 1; }
}
check_enc_object() {
    local key=$1 size
    size=$(object_size "$BUCKET" "$key") || { echo "gcs.sh: no object gs://$BUCKET/$key" >&2; return 1; }
    ((size > SIZE_MIB * 1024 * 1024)) || { echo "gcs.sh: gs://$BUCKET/$key has only $size bytes" >&2; return 1; }
}
check_curl() { check_plain_object x; }
check_age_curl() { check_enc_object x.age; }
check_rclone() { check_plain_object "rc/$NAME"; }
check_push_obj() { check_push "$@" && check_enc_object "app/$NAME.age"; }
# After each upload run: drop the bucket (untimed) so the emulator's memory does not grow,
# except the last push bucket, which the restores read.
after_drop() { rm_bucket "$BUCKET"; }
after_push() { [[ $BUCKET == "push-$RUNS" ]] || rm_bucket "$BUCKET"; }

log "timing, $RUNS run(s) each, input $SIZE_MIB MiB (page cache warm), server $EP"

log "a. offsite push to gs://"
after=after_push measure push prep_bucket check_push_obj -- \
    "$OFFSITE" push "$INPUT" --to "gs://@BUCKET@/app?endpoint=$EP" -r "$RECIPIENT"
PUSHED=push-$RUNS

# -H 'Expect:': no 100-continue round trip. -T streams the file (--data-binary @FILE would load
# it into curl's memory first).
log "b. curl simple upload (uploadType=media; plaintext, no encryption)"
after=after_drop measure curl prep_bucket check_curl -- \
    curl -sS -f -o /dev/null -H 'Expect:' -H 'content-type: application/octet-stream' -X POST -T "$INPUT" \
    "$EP/upload/storage/v1/b/@BUCKET@/o?uploadType=media&name=x"

log "c. age -r R FILE | curl simple upload (encrypted, chunked request body)"
after=after_drop measure age-curl prep_bucket check_age_curl -- \
    bash -c 'set -euo pipefail; age -r "$1" "$2" | curl -sS -f -o /dev/null -H "Expect:" -H "content-type: application/octet-stream" -X POST -T - "$3"' \
    bash "$RECIPIENT" "$INPUT" "$EP/upload/storage/v1/b/@BUCKET@/o?uploadType=media&name=x.age"

if [[ $RCLONE_UP == 1 ]]; then
    log "d. rclone copy (plaintext, no encryption)"
    after=after_drop measure rclone prep_bucket check_rclone -- \
        rclone copy "$INPUT" "$RCLONE_REMOTE:@BUCKET@/rc"
else
    log "d. rclone copy: skipped, rclone cannot upload to this emulator (see above)"
fi

log "e. offsite restore vs curl | age -d and rclone cat | age -d (all from gs://$PUSHED/app)"
after=: measure restore prep_restore check_ok -- \
    "$OFFSITE" restore "gs://$PUSHED/app?endpoint=$EP" --latest -o "$WORK/restored" -i "$WORK/key.txt"
cmp -s "$INPUT" "$WORK/restored" || die "offsite restore output differs from the input"
after=: measure curl-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; curl -sS -f "$1" | age -d -i "$2" >"$3"' \
    bash "$EP/storage/v1/b/$PUSHED/o/app%2F$NAME.age?alt=media" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "curl | age -d output differs from the input"
after=: measure rclone-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; rclone cat "$1" | age -d -i "$2" >"$3"' \
    bash "$RCLONE_REMOTE:$PUSHED/app/$NAME.age" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "rclone cat | age -d output differs from the input"
rm -f "$WORK/restored" "$WORK/restored2"
rm_bucket "$PUSHED"
SERVER_HWM=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SPID/status")

# --- report ------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
per_gib() { awk -v c="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.2f", c / (m / 1024) }'; }

echo
echo "offsite GCS push/restore benchmark (gcs_emulator.py on loopback, in memory)"
echo "  machine:  $(nproc) CPU(s) (nproc), $(uname -srm)"
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   tests/emulators/gcs_emulator.py on $(basename "$(dirname "$(dirname "$GCS_PY")")") ($("$GCS_PY" --version 2>&1)); peak RSS ${SERVER_HWM} MiB"
echo "  curl:     $(curl --version 2>/dev/null | head -n 1 | cut -d' ' -f1-2)"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  input:    $SIZE_MIB MiB random; $RUNS run(s) per command (median wall/CPU, max RSS); page cache warm"
echo
printf '%-62s %10s %12s %14s\n' "command" "wall s" "user+sys s" "peak RSS MiB"
printf '%-62s %10s %12s %14s\n' "-------" "------" "----------" "------------"
declare -A DESC=(
    [push]="offsite push FILE --to gs://B/app?endpoint=.. -r R"
    [curl]="curl -T FILE .../o?uploadType=media     (no encryption)"
    [age-curl]="age -r R FILE | curl -T - ...uploadType=media"
    [rclone]="rclone copy FILE offsitebench:B/rc      (no encryption)"
    [restore]="offsite restore gs://B/app --latest -o OUT -i key"
    [curl-age-d]="curl .../app%2FNAME.age?alt=media | age -d > OUT2"
    [rclone-age-d]="rclone cat offsitebench:B/app/NAME.age | age -d > OUT2"
)
for l in "${ORDER[@]}"; do
    printf '%-62s %10.2f %12.2f %14.1f\n' "${DESC[$l]}" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
done
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / curl upload:           $(ratio "${WALL[push]}" "${WALL[curl]}")  ($(ratio "${CPU[push]}" "${CPU[curl]}"))"
echo "  push    / (age | curl upload):   $(ratio "${WALL[push]}" "${WALL[age-curl]}")  ($(ratio "${CPU[push]}" "${CPU[age-curl]}"))"
if [[ $RCLONE_UP == 1 ]]; then
    echo "  push    / rclone copy:           $(ratio "${WALL[push]}" "${WALL[rclone]}")  ($(ratio "${CPU[push]}" "${CPU[rclone]}"))"
else
    echo "  push    / rclone copy:           n/a (rclone cannot upload to this emulator, see below)"
fi
echo "  restore / (curl | age -d):       $(ratio "${WALL[restore]}" "${WALL[curl-age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[curl-age-d]}"))"
echo "  restore / (rclone cat | age -d): $(ratio "${WALL[restore]}" "${WALL[rclone-age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[rclone-age-d]}"))"
echo
echo "client CPU-seconds per GiB (user+sys), and the emulator's CPU-seconds per GiB:"
for l in "${ORDER[@]}"; do
    printf '  %-12s client %6s s/GiB   server %6s s/GiB\n' "$l" "$(per_gib "${CPU[$l]}")" "$(per_gib "${SCPU[$l]}")"
done
echo
echo "notes: offsite encrypts with age and hashes (plaintext and ciphertext SHA-256; CRC32C and"
echo "  MD5 sent with the last chunk) and uploads a resumable session in chunks; curl uploads"
echo "  in one request (plaintext, or age's output) and checks nothing; rclone copy uploads"
echo "  the plaintext in 16 MiB resumable chunks (one multipart request below 16 MiB) and"
echo "  compares the stored MD5 with its own. The emulator is"
echo "  Python (its handlers serialized by one lock) holding every object in memory, far"
echo "  slower than GCS: read the ratios and the client CPU, not the seconds."
echo "  Peak RSS of a pipeline is its largest process, not the sum (GNU time %M)."
if [[ $RCLONE_UP == 0 ]]; then
    printf '  %s\n' "${RCLONE_NOTE[@]}"
fi
