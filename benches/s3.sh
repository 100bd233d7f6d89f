#!/usr/bin/env bash
# benches/s3.sh: wall time, CPU and peak RSS of `offsite push` / `offsite restore` to and from an
# S3 server (a local s3s-fs on loopback) against the stock clients people use instead
# (`aws s3 cp`, `rclone copy`, and `aws s3 cp ... - | age -d` for restore), all on the same input
# file against the same server in the same run, so the ratios are what to read, not the absolute
# seconds. offsite encrypts (age) and hashes (SHA-256 of plaintext and ciphertext, per-part
# SHA-256 checksums) on the way; `aws s3 cp` and `rclone copy` upload the plaintext unencrypted.
#
# Usage:
#   benches/s3.sh
#   SIZE_MIB=256 RUNS=5 PIN=0 benches/s3.sh
#
# Environment:
#   SIZE_MIB          size of the random input file in MiB                      (default 1024)
#   RUNS              repetitions of every timed command; the median wall is kept  (default 3)
#   PIN               1: server on CPU 1 (`taskset -c 1`), every client on CPU 0
#                     (`taskset -c 0`), so the server's CPU does not eat into the
#                     client's (../shared/TESTING.md); needs 2+ CPUs, else falls
#                     back to 0 with a warning. 0: no pinning.              (default 1)
#   BENCH_DIR         work directory (input, key, server data, cache); created if missing.
#                     Default: a fresh `mktemp -d` under /tmp, removed on exit. If set, the
#                     script works in BENCH_DIR/offsite-s3-bench and removes only that on exit.
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps s3s-fs (default $HOME/.cache/offsite/tools)
#
# Needs: cargo, python3 and curl (for the server's port and start-up, as tests/emulators/start.sh),
# /usr/bin/time (Debian `time`), age, taskset (util-linux), rclone, the aws CLI. `time`, `age`,
# `rclone` and `awscli` are installed with apt-get when missing; s3s-fs with
# tests/emulators/install.sh. The aws CLI used is /usr/bin/aws (Debian `awscli`, v2) when present
# or installable, else whatever `aws` is on PATH; the report prints its version.
#
# Credentials are the emulator's test pair (not secrets), exported as AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY with AWS_REGION=us-east-1. rclone runs with AWS_CA_BUNDLE unset (Debian's
# rclone 1.60 fails with a CA-bundle error when it is set; the endpoint is plain http anyway).
#
# Every upload run goes to a fresh bucket (created untimed with `aws s3 mb`, deleted untimed
# after the run), so nothing is ever "already stored"; a push that says so, or resumes from a
# spool, stops the script. offsite's cache (spool) is BENCH_DIR/cache via OFFSITE_CACHE_DIR and
# wiped between runs. Restores read the archive of the last push run and are compared with the
# input (cmp). The page cache is NOT dropped (needs root): the input is read warm. `sync` runs
# (untimed) before each run. A failing command stops the script with its exit code and stderr.
#
# Peak RSS is GNU time's %M: for `bash -c 'A | B'` that is the largest single process of the
# pipeline, not their sum. CPU (user+sys) includes every child the command waited for. Server
# CPU is read from /proc for the s3s-fs process around each run and printed separately.

set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}
TOOLS=${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}

die() { printf 's3.sh: error: %s\n' "$*" >&2; exit 1; }
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
if [[ ! -x /usr/bin/aws ]]; then
    apt_install awscli || log "apt-get install awscli failed; falling back to the aws on PATH"
fi
if [[ -x /usr/bin/aws ]]; then
    AWS=/usr/bin/aws
else
    AWS=$(command -v aws) || die "no aws CLI: /usr/bin/aws missing and none on PATH"
fi
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
command -v cargo >/dev/null || die "cargo not found"

log "tests/emulators/install.sh (s3s-fs under $TOOLS)"
OFFSITE_TOOLS_DIR=$TOOLS "$REPO/tests/emulators/install.sh"
S3S_FS=$(ls -d "$TOOLS"/s3s-fs-*/bin/s3s-fs 2>/dev/null | sort -V | tail -n 1)
[[ -n $S3S_FS && -x $S3S_FS ]] || die "no s3s-fs under $TOOLS after tests/emulators/install.sh"

if [[ $PIN == 1 && $(nproc) -lt 2 ]]; then
    log "WARNING: PIN=1 needs 2 CPUs, nproc says $(nproc); running unpinned"
    PIN=0
fi
if [[ $PIN == 1 ]]; then
    SERVER_PIN=(taskset -c 1)
    CLIENT_PIN=(taskset -c 0)
    PIN_MODE="pinned: s3s-fs on CPU 1 (taskset -c 1), clients on CPU 0 (taskset -c 0)"
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
    WORK=$(cd "$BENCH_DIR" && pwd)/offsite-s3-bench
    rm -rf "$WORK"
    mkdir "$WORK"
else
    WORK=$(mktemp -d /tmp/offsite-s3-bench.XXXXXX)
fi
cleanup() { stop_server; rm -rf "${WORK:?}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export OFFSITE_CACHE_DIR=$WORK/cache
cd "$WORK"

NAME=input.bin
INPUT=$WORK/$NAME
S3DIR=$WORK/s3s-data
LOGS=$WORK/logs
mkdir -p "$LOGS" "$S3DIR"

# --- server ------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
EP=http://127.0.0.1:$PORT
log "starting s3s-fs on $EP (data in $S3DIR)"
# Test credentials for a loopback-only server, not secrets.
"${SERVER_PIN[@]}" "$S3S_FS" --host 127.0.0.1 --port "$PORT" \
    --access-key offsite-test --secret-key offsite-test-secret "$S3DIR" >"$LOGS/s3s.log" 2>&1 &
SPID=$!
for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "$EP/" && break
    kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/s3s.log" >&2; die "s3s-fs exited at start-up"; }
    sleep 0.1
done
curl -s -o /dev/null "$EP/" || { cat "$LOGS/s3s.log" >&2; die "s3s-fs did not answer on $EP"; }

export AWS_ACCESS_KEY_ID=offsite-test AWS_SECRET_ACCESS_KEY=offsite-test-secret AWS_REGION=us-east-1
export AWS_PAGER=""
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
aws_() { "$AWS" --endpoint-url "$EP" "$@"; }
# rclone's remote from RCLONE_CONFIG_* (an on-the-fly `:s3,endpoint=http://...` connection string
# would need quoting around the URL's colon); no config file is read or written.
export RCLONE_CONFIG_OFFSITEBENCH_TYPE=s3 RCLONE_CONFIG_OFFSITEBENCH_PROVIDER=Other \
    RCLONE_CONFIG_OFFSITEBENCH_ENV_AUTH=true RCLONE_CONFIG_OFFSITEBENCH_ENDPOINT=$EP \
    RCLONE_CONFIG_OFFSITEBENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_OFFSITEBENCH_REGION=us-east-1
export RCLONE_CONFIG=/dev/null
RCLONE_REMOTE=offsitebench

# --- input and key -----------------------------------------------------------------------------
log "work dir $WORK; making $SIZE_MIB MiB of random data"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$INPUT"

log "offsite keygen -o key.txt"
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
[[ $RECIPIENT == age1* ]] || die "offsite keygen printed '$RECIPIENT', not an age1... recipient"

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
        kill -0 "$SPID" 2>/dev/null || { cat "$LOGS/s3s.log" >&2; die "s3s-fs is no longer running"; }
        local t0 t1
        t0=$(server_ticks)
        rc=0
        "${CLIENT_PIN[@]}" /usr/bin/time -f '%e %M %U %S' -o "$tf" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
        t1=$(server_ticks)
        if ((rc != 0)); then
            printf '\ns3.sh: FAILED (exit %d): %s\n' "$rc" "${cmd[*]}" >&2
            printf -- '--- stdout ---\n' >&2; cat "$out" >&2
            printf -- '--- stderr ---\n' >&2; cat "$err" >&2
            exit "$rc"
        fi
        "$check" "$out" "$err" || { printf 's3.sh: check failed for: %s\n' "${cmd[*]}" >&2; cat "$out" "$err" >&2; exit 1; }
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
mk_bucket() { aws_ s3 mb "s3://$BUCKET" >"$LOGS/mb.$BUCKET.out" 2>&1 || { cat "$LOGS/mb.$BUCKET.out" >&2; die "aws s3 mb s3://$BUCKET failed"; }; }
rm_bucket() { aws_ s3 rb --force "s3://$1" >"$LOGS/rb.$1.out" 2>&1 || { cat "$LOGS/rb.$1.out" >&2; die "aws s3 rb --force s3://$1 failed"; }; }
prep_bucket() { mk_bucket; }
prep_restore() { rm -f "$WORK/restored"; }
prep_restore2() { rm -f "$WORK/restored2"; }
check_ok() { return 0; }
check_push() {
    # Every run must really store.
    if grep -q 'already stored\|resumed from the spool' "$1" "$2"; then
        echo "s3.sh: push did not do the work (already stored / resumed)" >&2; return 1
    fi
    grep -Eq '^1 of 1 destinations hold the archive\.$' "$1"
}
# Checks that the object landed with the input's size (encrypted: a little larger).
object_size() { aws_ s3api head-object --bucket "$BUCKET" --key "$1" --query ContentLength --output text; }
check_plain_object() {
    local key=$1 size
    size=$(object_size "$key") || { echo "s3.sh: no object s3://$BUCKET/$key" >&2; return 1; }
    [[ $size == $((SIZE_MIB * 1024 * 1024)) ]] || { echo "s3.sh: s3://$BUCKET/$key has $size bytes, expected $((SIZE_MIB * 1024 * 1024))" >&2; return 1; }
}
check_awscp() { check_plain_object x; }
check_rclone() { check_plain_object "rc/$NAME"; }
check_push_obj() {
    check_push "$@" || return 1
    local size
    size=$(object_size "app/$NAME.age") || { echo "s3.sh: no object s3://$BUCKET/app/$NAME.age" >&2; return 1; }
    ((size > SIZE_MIB * 1024 * 1024)) || { echo "s3.sh: s3://$BUCKET/app/$NAME.age has only $size bytes" >&2; return 1; }
}
# After each upload run: drop the bucket (untimed) so the server's disk does not fill up, except
# the last push bucket, which the restores read.
after_drop() { rm_bucket "$BUCKET"; }
after_push() { [[ $BUCKET == "push-$RUNS" ]] || rm_bucket "$BUCKET"; }

log "timing, $RUNS run(s) each, input $SIZE_MIB MiB (page cache warm), server $EP"

log "a. offsite push to s3://"
after=after_push measure push prep_bucket check_push_obj -- \
    "$OFFSITE" push "$INPUT" --to "s3://@BUCKET@/app?endpoint=$EP" -r "$RECIPIENT"
PUSHED=push-$RUNS

log "b. aws s3 cp (plaintext, no encryption)"
after=after_drop measure aws-cp prep_bucket check_awscp -- \
    "$AWS" --endpoint-url "$EP" s3 cp --no-progress "$INPUT" "s3://@BUCKET@/x"

log "c. rclone copy (plaintext, no encryption; AWS_CA_BUNDLE unset)"
after=after_drop measure rclone prep_bucket check_rclone -- \
    env -u AWS_CA_BUNDLE rclone copy "$INPUT" "$RCLONE_REMOTE:@BUCKET@/rc"

log "d. offsite restore vs aws s3 cp - | age -d (both from s3://$PUSHED/app)"
after=: measure restore prep_restore check_ok -- \
    "$OFFSITE" restore "s3://$PUSHED/app?endpoint=$EP" --latest -o "$WORK/restored" -i "$WORK/key.txt"
cmp -s "$INPUT" "$WORK/restored" || die "offsite restore output differs from the input"
after=: measure aws-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; "$1" --endpoint-url "$2" s3 cp --no-progress "s3://$3/app/$4.age" - | age -d -i "$5" >"$6"' \
    bash "$AWS" "$EP" "$PUSHED" "$NAME" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "aws s3 cp - | age -d output differs from the input"
rm -f "$WORK/restored" "$WORK/restored2"
rm_bucket "$PUSHED"

# --- report ------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
per_gib() { awk -v c="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.2f", c / (m / 1024) }'; }

echo
echo "offsite S3 push/restore benchmark (s3s-fs on loopback)"
echo "  machine:  $(nproc) CPU(s) (nproc), $(uname -srm)"
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   s3s-fs ($S3S_FS)"
echo "  aws:      $("$AWS" --version 2>&1 | head -n 1) ($AWS)"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  input:    $SIZE_MIB MiB random; $RUNS run(s) per command (median wall/CPU, max RSS); page cache warm"
echo
printf '%-62s %10s %12s %14s\n' "command" "wall s" "user+sys s" "peak RSS MiB"
printf '%-62s %10s %12s %14s\n' "-------" "------" "----------" "------------"
declare -A DESC=(
    [push]="offsite push FILE --to s3://B/app?endpoint=.. -r R"
    [aws-cp]="aws s3 cp FILE s3://B/x                 (no encryption)"
    [rclone]="rclone copy FILE offsitebench:B/rc      (no encryption)"
    [restore]="offsite restore s3://B/app --latest -o OUT -i key"
    [aws-age-d]="aws s3 cp s3://B/app/NAME.age - | age -d -i key > OUT2"
)
for l in "${ORDER[@]}"; do
    printf '%-62s %10.2f %12.2f %14.1f\n' "${DESC[$l]}" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
done
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / aws s3 cp:            $(ratio "${WALL[push]}" "${WALL[aws-cp]}")  ($(ratio "${CPU[push]}" "${CPU[aws-cp]}"))"
echo "  push    / rclone copy:          $(ratio "${WALL[push]}" "${WALL[rclone]}")  ($(ratio "${CPU[push]}" "${CPU[rclone]}"))"
echo "  restore / (aws s3 cp | age -d): $(ratio "${WALL[restore]}" "${WALL[aws-age-d]}")  ($(ratio "${CPU[restore]}" "${CPU[aws-age-d]}"))"
echo
echo "client CPU-seconds per GiB (user+sys), and the server's (s3s-fs) CPU-seconds per GiB:"
for l in "${ORDER[@]}"; do
    printf '  %-10s client %6s s/GiB   server %6s s/GiB\n' "$l" "$(per_gib "${CPU[$l]}")" "$(per_gib "${SCPU[$l]}")"
done
echo
echo "notes: offsite encrypts with age and hashes (plaintext and ciphertext SHA-256, per-part"
echo "  checksums) while aws s3 cp and rclone copy upload the plaintext as is; restore's"
echo "  comparison does decrypt (age -d) but checks no hash beyond age's own authentication."
echo "  Peak RSS of the aws|age pipeline is its largest process, not the sum (GNU time %M)."
