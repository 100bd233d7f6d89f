#!/usr/bin/env bash
# benches/restore_rto.sh: the restore throughput an `offsite drill` measures and records (what
# `status` estimates restore times and judges `rto` from; README "Recovery time") against what a
# user restoring the same copy by hand would see: `rclone cat REMOTE:B/app/NAME.age | age -d -i
# key > /dev/null`. One archive of SIZE_MIB random MiB is pushed (untimed) by a policy to a local
# s3s-fs on loopback; then, in one run, RUNS drills (each one's wall time, and the seconds and
# bytes per second it recorded in the verification record) and RUNS of the rclone | age
# pipeline on the same stored object. Both read the whole ciphertext and decrypt it; the drill
# also hashes the ciphertext and the plaintext (SHA-256 each) and writes its record.
#
# Usage:
#   benches/restore_rto.sh
#   SIZE_MIB=64 RUNS=3 PIN=0 PROFILE=debug benches/restore_rto.sh
#
# Environment:
#   SIZE_MIB          size of the random archive in MiB                          (default 256)
#   RUNS              repetitions of every timed command; the median is kept      (default 3)
#   PIN               1: server on CPU 1, clients on CPU 0 (needs 2+ CPUs); 0: none (default 1)
#   PROFILE           release (lib.sh's build_offsite) or debug (`cargo build`, for a quick
#                     look; its numbers favour the stock tools)                   (default release)
#   OFFSITE           a built offsite binary to measure instead of building one (PROFILE then
#                     only names it in the report)
#   BENCH_DIR         work directory; default a fresh `mktemp -d` under /tmp, removed on exit
#   CARGO_TARGET_DIR  cargo target directory (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps s3s-fs (default $HOME/.cache/offsite/tools)
#
# Needs cargo, python3, curl, jq, taskset, /usr/bin/time, age and rclone (the last four from
# Debian when missing), and s3s-fs (tests/emulators/install.sh). rclone runs with AWS_CA_BUNDLE
# unset (Debian's rclone 1.60 fails with a CA-bundle error when it is set).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
PROFILE=${PROFILE:-release}
need_posint SIZE_MIB RUNS
need_01 PIN
[[ $PROFILE == release || $PROFILE == debug ]] || die "PROFILE must be release or debug, got '$PROFILE'"

need_server_tools
command -v jq >/dev/null || apt_install jq || die "jq is needed"
install_emulators s3s-fs
S3S_FS=$(latest_tool 's3s-fs-*/bin/s3s-fs')
[[ -n $S3S_FS && -x $S3S_FS ]] || die "no s3s-fs under $TOOLS after tests/emulators/install.sh"

setup_pin s3s-fs
if [[ -n ${OFFSITE:-} ]]; then
    [[ -x $OFFSITE ]] || die "OFFSITE=$OFFSITE is not an executable"
    log "measuring the given binary $OFFSITE (no build)"
elif [[ $PROFILE == release ]]; then
    build_offsite
else
    log "building: nice -n 10 cargo build --bin offsite (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && nice -n 10 cargo build --bin offsite)
    OFFSITE=$CARGO_TARGET_DIR/debug/offsite
    [[ -x $OFFSITE ]] || die "no binary at $OFFSITE after the build"
fi
setup_work offsite-restore-rto-bench
S3DIR=$WORK/s3s-data
mkdir -p "$S3DIR/bench"

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
log "starting s3s-fs on $EP (data in $S3DIR)"
SERVER_NAME=s3s-fs SERVER_LOG=$LOGS/s3s.log
# Test credentials for a loopback-only server, not secrets.
start_server "$EP/" 200 "$S3S_FS" --host 127.0.0.1 --port "$PORT" \
    --access-key offsite-test --secret-key offsite-test-secret "$S3DIR"
export AWS_ACCESS_KEY_ID=offsite-test AWS_SECRET_ACCESS_KEY=offsite-test-secret AWS_REGION=us-east-1
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
export RCLONE_CONFIG_OFFSITEBENCH_TYPE=s3 RCLONE_CONFIG_OFFSITEBENCH_PROVIDER=Other \
    RCLONE_CONFIG_OFFSITEBENCH_ENV_AUTH=true RCLONE_CONFIG_OFFSITEBENCH_ENDPOINT=$EP \
    RCLONE_CONFIG_OFFSITEBENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_OFFSITEBENCH_REGION=us-east-1
export RCLONE_CONFIG=/dev/null

# --- the archive, pushed by a policy (untimed) -------------------------------------------------
make_input_and_key
NAME=app-backup-20261126_020000.tar.gz
mv "$INPUT" "$WORK/$NAME"
INPUT=$WORK/$NAME
cat >"$WORK/policy.toml" <<EOF
version = 1
name = "bench"
prefix = "app"
rto = "1h"
[encryption]
recipients = ["$RECIPIENT"]
[[destination]]
name = "s3"
url = "s3://bench?region=us-east-1&endpoint=$EP"
EOF
log "offsite push (untimed)"
"$OFFSITE" push "$INPUT" --policy "$WORK/policy.toml" >"$LOGS/push.out" 2>"$LOGS/push.err" \
    || { cat "$LOGS/push.out" "$LOGS/push.err" >&2; die "offsite push failed"; }
STORED=$(stat -c %s "$S3DIR/bench/app/$NAME.age")

# --- measuring ---------------------------------------------------------------------------------
# check_drill OUT ERR: the drill proved the copy; its recorded seconds and bytes per second are
# kept for the report.
DRILL_SECS=() DRILL_BPS=()
check_drill() {
    local secs bps
    secs=$(jq -r '.copies[0].restore.seconds // empty' "$1")
    bps=$(jq -r '.copies[0].restore.bytes_per_second // empty' "$1")
    [[ -n $secs && -n $bps ]] || { echo "$SCRIPT: the drill recorded no restore" >&2; return 1; }
    DRILL_SECS+=("$secs")
    DRILL_BPS+=("$bps")
}
log "timing, $RUNS run(s) each, $SIZE_MIB MiB archive ($STORED bytes stored), server $EP"
log "a. offsite drill --policy (the restore it measures and records)"
measure drill prep_none check_drill -- \
    "$OFFSITE" --json drill --policy "$WORK/policy.toml" -i "$WORK/key.txt"
log "b. rclone cat | age -d > /dev/null (the same copy, by hand)"
measure rclone-age prep_none check_ok -- \
    bash -c 'set -euo pipefail; env -u AWS_CA_BUNDLE rclone cat "offsitebench:bench/app/$1.age" | age -d -i "$2" >/dev/null' \
    bash "$NAME" "$WORK/key.txt"

# --- report ------------------------------------------------------------------------------------
mib_s() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / s / 1048576; else print "n/a" }'; }
REC_SECS=$(printf '%s\n' "${DRILL_SECS[@]}" | median)
REC_BPS=$(printf '%s\n' "${DRILL_BPS[@]}" | median)
echo
echo "offsite drill's measured restore vs rclone cat | age -d (s3s-fs on loopback)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE, $PROFILE build)"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
echo "  archive:  $SIZE_MIB MiB random, $STORED bytes stored (age); $RUNS run(s) each, medians"
declare -A DESC=(
    [drill]="offsite drill --policy P -i key (restore to nowhere, recorded)"
    [rclone-age]="rclone cat REMOTE:B/app/NAME.age | age -d -i key > /dev/null"
)
print_table
echo
echo "throughput of the stored bytes:"
echo "  drill, as recorded (restore.bytes_per_second):  $(awk -v b="$REC_BPS" 'BEGIN { printf "%.1f", b / 1048576 }') MiB/s ($REC_SECS s)"
echo "  drill, whole command wall:                       $(mib_s "$STORED" "${WALL[drill]}") MiB/s"
echo "  rclone cat | age -d, wall:                       $(mib_s "$STORED" "${WALL[rclone-age]}") MiB/s"
echo "  recorded drill time / rclone|age wall:           $(ratio "$REC_SECS" "${WALL[rclone-age]}")"
echo
echo "notes: the drill's recorded time covers the download, decryption and both SHA-256 hashes,"
echo "  not the process start, listing and record write that its wall time adds; rclone | age"
echo "  checks no hash beyond age's own authentication. status divides the newest archive's size"
echo "  by the recorded throughput to estimate a restore."
