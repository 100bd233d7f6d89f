# benches/lib.sh: shell code shared by benches/push.sh, s3.sh, gcs.sh and azure.sh. Sourced, not
# run: `. "$(dirname "$0")/lib.sh"` right after `set -euo pipefail`. It defines functions and a
# few globals only (REPO, SCRIPT, TOOLS, CARGO_TARGET_DIR, SPID, the result arrays); the scripts
# keep their own defaults (SIZE_MIB, RUNS, ...), commands, checks and report text.
#
# Globals a script sets for these functions: WORK/LOGS/NAME/INPUT (setup_work), OFFSITE
# (build_offsite), SERVER_PIN/CLIENT_PIN/PIN_MODE (setup_pin), SPID/SERVER_NAME/SERVER_LOG
# (start_server), DESC (print_table), OBJECT_KIND/OBJECT_URL and object_size (the object checks),
# mk_bucket/rm_bucket (prep_bucket, after_drop, after_push).

SCRIPT=$(basename "$0")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}
# The SDKs' credential chains probe the metadata service (169.254.169.254: AWS IMDS, GCE
# metadata, Azure managed identity) when no credentials are set; never from here.
export AWS_EC2_METADATA_DISABLED=true GCE_METADATA_HOST=127.0.0.1:9
unset IDENTITY_ENDPOINT MSI_ENDPOINT IMDS_ENDPOINT
TOOLS=${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}
SERVER_PIN=() CLIENT_PIN=()
SPID= SERVER_NAME=server SERVER_LOG=/dev/null

# die MSG: print "SCRIPT: error: MSG" on stderr and exit 1.
die() { printf '%s: error: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
# log MSG: a progress line on stderr.
log() { printf '==> %s\n' "$*" >&2; }

# need_posint VAR...: die unless each named variable holds a positive integer.
need_posint() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
    done
}
# need_01 VAR...: die unless each named variable is 0 or 1.
need_01() {
    local v
    for v in "$@"; do
        [[ ${!v} == 0 || ${!v} == 1 ]] || die "$v must be 0 or 1, got '${!v}'"
    done
}

# --- tools -------------------------------------------------------------------------------------
# apt_install PKG...: apt-get install (via sudo when not root), with one `apt-get update` and
# retry when the first attempt fails. Returns non-zero when it cannot install.
apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing Debian package(s): $*"
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
# apt_need CMD...: install the Debian package of the same name for each missing command, or die.
# `time` means /usr/bin/time (GNU time), not the shell keyword.
apt_need() {
    local c
    for c in "$@"; do
        if [[ $c == time ]]; then
            [[ -x /usr/bin/time ]] || apt_install time || die "cannot install time"
        else
            command -v "$c" >/dev/null || apt_install "$c" || die "cannot install $c"
        fi
    done
}
# need_cmd CMD [HINT]: die "CMD not found (HINT)" when CMD is not on PATH.
need_cmd() { command -v "$1" >/dev/null || die "$1 not found${2:+ ($2)}"; }

# need_server_tools: what the server benches (s3, gcs, azure) need: time, age and rclone
# (installed when missing), taskset, python3, curl and cargo.
need_server_tools() {
    apt_need time age rclone
    need_cmd taskset util-linux
    need_cmd python3
    need_cmd curl
    need_cmd cargo
}
# install_emulators WHAT: run tests/emulators/install.sh into TOOLS (WHAT is for the log line).
install_emulators() {
    log "tests/emulators/install.sh ($1 under $TOOLS)"
    OFFSITE_TOOLS_DIR=$TOOLS "$REPO/tests/emulators/install.sh"
}
# latest_tool GLOB: print the newest (sort -V) path matching TOOLS/GLOB.
latest_tool() { ls -d "$TOOLS"/$1 2>/dev/null | sort -V | tail -n 1; }

# setup_pin SERVER: from PIN (0/1) set SERVER_PIN and CLIENT_PIN (taskset prefixes: server on
# CPU 1, clients on CPU 0) and PIN_MODE (the report's line); PIN=1 on one CPU falls back to 0.
setup_pin() {
    if [[ $PIN == 1 && $(nproc) -lt 2 ]]; then
        log "WARNING: PIN=1 needs 2 CPUs, nproc says $(nproc); running unpinned"
        PIN=0
    fi
    if [[ $PIN == 1 ]]; then
        SERVER_PIN=(taskset -c 1)
        CLIENT_PIN=(taskset -c 0)
        PIN_MODE="pinned: $1 on CPU 1 (taskset -c 1), clients on CPU 0 (taskset -c 0)"
    else
        SERVER_PIN=()
        CLIENT_PIN=()
        PIN_MODE="unpinned: server and clients share all $(nproc) CPU(s)"
    fi
    log "CPU mode: $PIN_MODE"
}

# --- build -------------------------------------------------------------------------------------
# build_offsite: cargo build --release the offsite binary (niced) and set OFFSITE to it.
build_offsite() {
    log "building: nice -n 10 cargo build --release --bin offsite (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && nice -n 10 cargo build --release --bin offsite)
    OFFSITE=$CARGO_TARGET_DIR/release/offsite
    [[ -x $OFFSITE ]] || die "no binary at $OFFSITE after the build"
}

# --- work dir ----------------------------------------------------------------------------------
# stop_server: kill and reap the server started by start_server, if any.
stop_server() {
    if [[ -n $SPID ]]; then
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SPID=
    fi
}
# setup_work SUBDIR: make the work dir WORK (BENCH_DIR/SUBDIR, emptied, when BENCH_DIR is set,
# else a fresh /tmp/SUBDIR.XXXXXX), remove it (and stop the server) on exit, point offsite's
# cache at WORK/cache, cd there, and set NAME, INPUT and LOGS (created).
setup_work() {
    if [[ -n ${BENCH_DIR:-} ]]; then
        mkdir -p "$BENCH_DIR"
        # Only our own subdirectory, not a directory someone handed us.
        WORK=$(cd "$BENCH_DIR" && pwd)/$1
        rm -rf "$WORK"
        mkdir "$WORK"
    else
        WORK=$(mktemp -d "/tmp/$1.XXXXXX")
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
}

# --- server ------------------------------------------------------------------------------------
# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_server PROBE_URL TRIES CMD...: start CMD in the background (under SERVER_PIN, output to
# SERVER_LOG), set SPID, and wait up to TRIES * 0.1 s until curl gets an answer from PROBE_URL.
# Dies (with the log) when the server exits or never answers; messages name SERVER_NAME and EP.
start_server() {
    local probe=$1 tries=$2 i; shift 2
    "${SERVER_PIN[@]}" "$@" >"$SERVER_LOG" 2>&1 &
    SPID=$!
    for ((i = 0; i < tries; i++)); do
        curl -s -o /dev/null "$probe" && break
        kill -0 "$SPID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "$SERVER_NAME exited at start-up"; }
        sleep 0.1
    done
    curl -s -o /dev/null "$probe" || { cat "$SERVER_LOG" >&2; die "$SERVER_NAME did not answer on $EP"; }
}
# server_hwm_mib: the server's peak RSS (VmHWM) in MiB.
server_hwm_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SPID/status"; }

# --- input and key -----------------------------------------------------------------------------
# make_input_and_key: write SIZE_MIB MiB of random data to INPUT and an offsite key to
# WORK/key.txt; set RECIPIENT to its age1... public key.
make_input_and_key() {
    log "work dir $WORK; making $SIZE_MIB MiB of random data"
    head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$INPUT"

    log "offsite keygen -o key.txt"
    RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
        || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
    [[ $RECIPIENT == age1* ]] || die "offsite keygen printed '$RECIPIENT', not an age1... recipient"
}

# --- measuring ---------------------------------------------------------------------------------
declare -A WALL CPU RSS SCPU
ORDER=()
BUCKET=
CLK_TCK=$(getconf CLK_TCK)

# median: the median of the numbers on stdin, one a line (the mean of the middle two when even).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# server_ticks: user+sys clock ticks the server (SPID) has used so far.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SPID/stat"; }

# measure LABEL PREP CHECK -- CMD...: for run i of RUNS (FLAT_RUNS for labels starting with
# "flat"), sets BUCKET to LABEL-i, runs PREP (untimed), wipes offsite's cache (unless
# KEEP_CACHE=1: a rerun that finds what the last run left), `sync`, then CMD
# under /usr/bin/time (prefixed by CLIENT_PIN), with every literal @BUCKET@ in CMD's arguments
# replaced by BUCKET. CHECK (a function, or check_ok) gets the run's stdout and stderr files; a
# failing CMD or CHECK stops the script. The function named by $after (if set) runs after each
# run. Records in WALL, CPU and RSS (indexed by LABEL, appended to ORDER) the median wall, the
# median user+sys and the max RSS over the runs. When a server runs (SPID set), also checks it is
# alive before each run and records its median CPU seconds during the runs in SCPU.
measure() {
    local label=$1 prep=$2 check=$3; shift 4
    local runs=$RUNS i rc walls=() cpus=() scpus=() maxrss=0 a cmd
    [[ $label == flat* ]] && runs=${FLAT_RUNS:-$RUNS}
    for ((i = 1; i <= runs; i++)); do
        BUCKET=$label-$i
        "$prep"
        [[ ${KEEP_CACHE:-0} == 1 ]] || rm -rf "$OFFSITE_CACHE_DIR"
        sync
        cmd=()
        for a in "$@"; do cmd+=("${a//@BUCKET@/$BUCKET}"); done
        local out=$LOGS/$label.$i.out err=$LOGS/$label.$i.err tf=$LOGS/$label.$i.time
        local t0= t1=
        if [[ -n $SPID ]]; then
            kill -0 "$SPID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "$SERVER_NAME is no longer running"; }
            t0=$(server_ticks)
        fi
        rc=0
        "${CLIENT_PIN[@]}" /usr/bin/time -f '%e %M %U %S' -o "$tf" "${cmd[@]}" >"$out" 2>"$err" || rc=$?
        [[ -z $SPID ]] || t1=$(server_ticks)
        if ((rc != 0)); then
            printf '\n%s: FAILED (exit %d): %s\n' "$SCRIPT" "$rc" "${cmd[*]}" >&2
            printf -- '--- stdout ---\n' >&2; cat "$out" >&2
            printf -- '--- stderr ---\n' >&2; cat "$err" >&2
            exit "$rc"
        fi
        "$check" "$out" "$err" || { printf '%s: check failed for: %s\n' "$SCRIPT" "${cmd[*]}" >&2; cat "$out" "$err" >&2; exit 1; }
        local wall rss usr sys scpu line
        read -r wall rss usr sys < <(tail -n 1 "$tf")
        walls+=("$wall")
        cpus+=("$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')")
        ((rss > maxrss)) && maxrss=$rss
        line=$(printf '    %-12s run %d/%d: %6.2f s wall, %6.2f s user, %6.2f s sys, %7.1f MiB RSS' \
            "$label" "$i" "$runs" "$wall" "$usr" "$sys" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")
        if [[ -n $t0 ]]; then
            scpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
            scpus+=("$scpu")
            line+=$(printf ', server %6.2f s CPU' "$scpu")
        fi
        printf '%s\n' "$line" >&2
        "${after:-:}"
    done
    WALL[$label]=$(printf '%s\n' "${walls[@]}" | median)
    CPU[$label]=$(printf '%s\n' "${cpus[@]}" | median)
    ((${#scpus[@]} == 0)) || SCPU[$label]=$(printf '%s\n' "${scpus[@]}" | median)
    RSS[$label]=$(awk -v k="$maxrss" 'BEGIN { printf "%.1f", k / 1024 }')
    ORDER+=("$label")
}

# --- preparations (untimed) and checks for measure -------------------------------------------
prep_none() { :; }
# prep_restore, prep_restore2: remove the previous run's restored output.
prep_restore() { rm -f "$WORK/restored"; }
prep_restore2() { rm -f "$WORK/restored2"; }
# prep_bucket: a fresh bucket (container) named BUCKET, with the script's mk_bucket NAME.
prep_bucket() { mk_bucket "$BUCKET"; }
check_ok() { return 0; }
# check_push OUT ERR: the push really stored, at its one destination (not "already stored" or
# resumed from a spool).
check_push() {
    if grep -q 'already stored\|resumed from the spool' "$1" "$2"; then
        echo "$SCRIPT: push did not do the work (already stored / resumed)" >&2; return 1
    fi
    grep -Eq '^1 of 1 destinations hold the archive\.$' "$1"
}
# check_plain_object KEY, check_enc_object KEY: object KEY in BUCKET exists with exactly the
# input's size (plaintext upload), or is larger than it (age-encrypted). Uses the script's
# object_size KEY (fails or prints nothing when there is no such object); messages name it
# "OBJECT_KIND OBJECT_URL$BUCKET/KEY".
check_plain_object() {
    local key=$1 size ref=$OBJECT_URL$BUCKET/$1
    size=$(object_size "$key") && [[ -n $size ]] || { echo "$SCRIPT: no $OBJECT_KIND $ref" >&2; return 1; }
    [[ $size == $((SIZE_MIB * 1024 * 1024)) ]] || { echo "$SCRIPT: $ref has $size bytes, expected $((SIZE_MIB * 1024 * 1024))" >&2; return 1; }
}
check_enc_object() {
    local key=$1 size ref=$OBJECT_URL$BUCKET/$1
    size=$(object_size "$key") && [[ -n $size ]] || { echo "$SCRIPT: no $OBJECT_KIND $ref" >&2; return 1; }
    ((size > SIZE_MIB * 1024 * 1024)) || { echo "$SCRIPT: $ref has only $size bytes" >&2; return 1; }
}
# check_push_obj OUT ERR: check_push, and the archive app/NAME.age is in BUCKET.
check_push_obj() { check_push "$@" && check_enc_object "app/$NAME.age"; }
# after_drop, after_push: run after each upload run (after=...): drop BUCKET (untimed) so the
# server does not fill up, except (after_push) the last push bucket, which the restores read.
after_drop() { rm_bucket "$BUCKET"; }
after_push() { [[ $BUCKET == "push-$RUNS" ]] || rm_bucket "$BUCKET"; }

# --- report ------------------------------------------------------------------------------------
# ratio A B: A/B as "N.NNx", or "n/a" when B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
# ratios LABEL_A LABEL_B: "wall ratio  (CPU ratio)" of two measured labels.
ratios() { echo "$(ratio "${WALL[$1]}" "${WALL[$2]}")  ($(ratio "${CPU[$1]}" "${CPU[$2]}"))"; }
# per_gib SECONDS: SECONDS per GiB of input.
per_gib() { awk -v c="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.2f", c / (m / 1024) }'; }
# machine_line: the report's "machine:" line.
machine_line() { echo "  machine:  $(nproc) CPU(s) (nproc), $(uname -srm)"; }
# input_line: the report's "input:" line.
input_line() { echo "  input:    $SIZE_MIB MiB random; $RUNS run(s) per command (median wall/CPU, max RSS); page cache warm"; }
# print_table: a blank line, then the result table: one row per label in ORDER, described by
# DESC[label] (an associative array the script declares).
print_table() {
    local l
    echo
    printf '%-62s %10s %12s %14s\n' "command" "wall s" "user+sys s" "peak RSS MiB"
    printf '%-62s %10s %12s %14s\n' "-------" "------" "----------" "------------"
    for l in "${ORDER[@]}"; do
        printf '%-62s %10.2f %12.2f %14.1f\n' "${DESC[$l]}" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
    done
}
# print_per_gib WIDTH: one line per label in ORDER with client and server CPU-seconds per GiB,
# the label padded to WIDTH.
print_per_gib() {
    local l
    for l in "${ORDER[@]}"; do
        printf "  %-${1}s client %6s s/GiB   server %6s s/GiB\n" "$l" "$(per_gib "${CPU[$l]}")" "$(per_gib "${SCPU[$l]}")"
    done
}
