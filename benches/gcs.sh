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
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
PIN=${PIN:-1}

need_posint SIZE_MIB RUNS
need_01 PIN

# --- tools -------------------------------------------------------------------------------------
need_server_tools

install_emulators gcp-storage-emulator
GCS_PY=$(latest_tool 'gcp-storage-emulator-*/bin/python')
[[ -n $GCS_PY && -x $GCS_PY ]] || die "no gcp-storage-emulator venv under $TOOLS after tests/emulators/install.sh"
GCS_EMU=$REPO/tests/emulators/gcs_emulator.py
[[ -f $GCS_EMU ]] || die "no $GCS_EMU"

setup_pin emulator
build_offsite
setup_work offsite-gcs-bench

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
log "starting the GCS emulator on $EP (in memory): $GCS_PY $GCS_EMU"
SERVER_NAME="the GCS emulator" SERVER_LOG=$LOGS/gcs.log
start_server "$EP/" 200 "$GCS_PY" "$GCS_EMU" --host 127.0.0.1 --port "$PORT"

# rclone's remote from RCLONE_CONFIG_*; no config file is read or written.
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_OFFSITEBENCH_TYPE="google cloud storage" RCLONE_CONFIG_OFFSITEBENCH_ANONYMOUS=true \
    RCLONE_CONFIG_OFFSITEBENCH_ENDPOINT=$EP
RCLONE_REMOTE=offsitebench
unset STORAGE_EMULATOR_HOST GOOGLE_APPLICATION_CREDENTIALS

# Bucket helpers (untimed).
mk_bucket() {
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
# Size of object KEY in BUCKET in bytes (fails if there is none), for the object checks.
OBJECT_KIND=object OBJECT_URL=gs://
object_size() {
    local key=$1
    curl -sS -f "$EP/storage/v1/b/$BUCKET/o/${key//\//%2F}" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])'
}

make_input_and_key

# --- can rclone upload to this emulator? -------------------------------------------------------
# Two sizes because rclone's Go client takes two code paths: one multipart/related request below
# 16 MiB, a resumable session in 16 MiB chunks from there. Each probe must exit 0 and read back
# byte for byte.
RCLONE_UP=1
RCLONE_WHY=()
log "probing rclone uploads to the emulator (1 MiB and 17 MiB)"
mk_bucket rclone-probe
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

# --- measuring (measure, checks and after_* in lib.sh) -----------------------------------------
# measure sets BUCKET to LABEL-i for run i and replaces @BUCKET@ in the command's arguments.
check_curl() { check_plain_object x; }
check_age_curl() { check_enc_object x.age; }
check_rclone() { check_plain_object "rc/$NAME"; }

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
SERVER_HWM=$(server_hwm_mib)

# --- report ------------------------------------------------------------------------------------
echo
echo "offsite GCS push/restore benchmark (gcs_emulator.py on loopback, in memory)"
machine_line
echo "  CPUs:     $PIN_MODE"
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  server:   tests/emulators/gcs_emulator.py on $(basename "$(dirname "$(dirname "$GCS_PY")")") ($("$GCS_PY" --version 2>&1)); peak RSS ${SERVER_HWM} MiB"
echo "  curl:     $(curl --version 2>/dev/null | head -n 1 | cut -d' ' -f1-2)"
echo "  rclone:   $(rclone version 2>/dev/null | head -n 1) ($(command -v rclone))"
echo "  age:      $(age --version 2>&1 | head -n 1)"
input_line
declare -A DESC=(
    [push]="offsite push FILE --to gs://B/app?endpoint=.. -r R"
    [curl]="curl -T FILE .../o?uploadType=media     (no encryption)"
    [age-curl]="age -r R FILE | curl -T - ...uploadType=media"
    [rclone]="rclone copy FILE offsitebench:B/rc      (no encryption)"
    [restore]="offsite restore gs://B/app --latest -o OUT -i key"
    [curl-age-d]="curl .../app%2FNAME.age?alt=media | age -d > OUT2"
    [rclone-age-d]="rclone cat offsitebench:B/app/NAME.age | age -d > OUT2"
)
print_table
echo
echo "ratios (wall; client CPU in brackets):"
echo "  push    / curl upload:           $(ratios push curl)"
echo "  push    / (age | curl upload):   $(ratios push age-curl)"
if [[ $RCLONE_UP == 1 ]]; then
    echo "  push    / rclone copy:           $(ratios push rclone)"
else
    echo "  push    / rclone copy:           n/a (rclone cannot upload to this emulator, see below)"
fi
echo "  restore / (curl | age -d):       $(ratios restore curl-age-d)"
echo "  restore / (rclone cat | age -d): $(ratios restore rclone-age-d)"
echo
echo "client CPU-seconds per GiB (user+sys), and the emulator's CPU-seconds per GiB:"
print_per_gib 12
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
