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
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
PIN=${PIN:-1}

need_posint SIZE_MIB RUNS
need_01 PIN

# --- tools -------------------------------------------------------------------------------------
need_server_tools

install_emulators Azurite
AZURITE=$(latest_tool 'azurite-*/node_modules/.bin/azurite-blob')
[[ -n $AZURITE && -x $AZURITE ]] || die "no azurite-blob under $TOOLS after tests/emulators/install.sh"

setup_pin Azurite
build_offsite
setup_work offsite-azure-bench
AZDIR=$WORK/azurite
mkdir -p "$AZDIR"

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
ACCOUNT=devstoreaccount1
EP=http://127.0.0.1:$PORT/$ACCOUNT
log "starting Azurite on $EP (data in $AZDIR)"
SERVER_NAME=Azurite SERVER_LOG=$LOGS/azurite.log
# --loose and --skipApiVersionCheck: offsite's SDK sends an API version Azurite does not know;
# --disableTelemetry: it phones home by default (as tests/emulators/start.sh).
start_server "$EP?comp=list" 300 "$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$AZDIR" \
    --loose --skipApiVersionCheck --disableTelemetry

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

make_input_and_key

# --- measuring (measure, checks and after_* in lib.sh) -----------------------------------------
# measure sets BUCKET (the container) to LABEL-i for run i and replaces @BUCKET@ in the command's
# arguments. Containers (untimed).
mk_bucket() { rclone mkdir "$RCLONE_REMOTE:$1" >"$LOGS/mk.$1.out" 2>&1 || { cat "$LOGS/mk.$1.out" >&2; die "rclone mkdir $RCLONE_REMOTE:$1 failed"; }; }
rm_bucket() { rclone purge "$RCLONE_REMOTE:$1" >"$LOGS/rm.$1.out" 2>&1 || { cat "$LOGS/rm.$1.out" >&2; die "rclone purge $RCLONE_REMOTE:$1 failed"; }; }
# Replaces lib.sh's prep_restore2: rclone copy + age -d also leaves the download in dl/.
prep_restore2() { rm -rf "$WORK/restored2" "$WORK/dl"; }
# Size of blob KEY in BUCKET in bytes (empty output when there is none), for the object checks.
OBJECT_KIND=blob OBJECT_URL=
object_size() { rclone lsf --format s "$RCLONE_REMOTE:$BUCKET/$1" 2>/dev/null; }
check_rclone() { check_plain_object "rc/$NAME"; }
check_age_rcat() { check_enc_object "rc/$NAME.age"; }

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
rm_bucket "$PUSHED"
SERVER_HWM=$(server_hwm_mib)

# --- report ------------------------------------------------------------------------------------
AZ_VERSION=$(basename "$(dirname "$(dirname "$(dirname "$AZURITE")")")")

echo
echo "offsite Azure push/restore benchmark (Azurite on loopback, data on disk)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   $AZ_VERSION (node $(node --version 2>/dev/null)); peak RSS ${SERVER_HWM} MiB"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
input_line
declare -A DESC=(
    [push]="offsite push FILE --to az://devstoreaccount1/C/app -r R"
    [rclone]="rclone copy FILE offsitebench:C/rc      (no encryption)"
    [age-rcat]="age -r R FILE | rclone rcat offsitebench:C/rc/NAME.age"
    [restore]="offsite restore az://../C/app --latest -o OUT -i key"
    [rclone-age-d]="rclone copy ..C/app/NAME.age DL && age -d -o OUT2 DL/.."
    [rcat-age-d]="rclone cat offsitebench:C/app/NAME.age | age -d > OUT2"
)
print_table
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / rclone copy:                $(ratios push rclone)"
echo "  push    / (age | rclone rcat):        $(ratios push age-rcat)"
echo "  restore / (rclone copy && age -d):    $(ratios restore rclone-age-d)"
echo "  restore / (rclone cat | age -d):      $(ratios restore rcat-age-d)"
echo
echo "client CPU-seconds per GiB (user+sys), and the server's (Azurite) CPU-seconds per GiB:"
print_per_gib 12
echo
echo "notes: offsite encrypts with age and hashes (plaintext and ciphertext SHA-256, an MD5"
echo "  per block) while rclone copy uploads the plaintext as is; age | rclone rcat encrypts"
echo "  but checks nothing beyond rclone's own. Restore's comparisons decrypt (age -d) but"
echo "  check no hash beyond age's own authentication; 'rclone copy && age -d' writes the"
echo "  ciphertext to disk first. Peak RSS of a pipeline is its largest process, not the"
echo "  sum (GNU time %M)."
