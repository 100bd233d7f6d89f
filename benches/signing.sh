#!/usr/bin/env bash
# benches/signing.sh: what checking signatures costs a reader (issue 27). COUNT small archives
# pushed signed to a local disk (file://), then, in one run: `offsite ls` without trusted keys
# (no signature checked), `offsite ls --trusted-file F` and quick `offsite verify --trusted-file
# F` (every manifest's signature checked, in process), against what a user would otherwise run
# to check the same signatures with stock tools: a loop of `jq` (the signed text and the
# signature out of each manifest) and `ssh-keygen -Y verify` over every manifest. Ratios are to
# that loop (how many times as long it takes).
#
# Usage:
#   benches/signing.sh
#   COUNT=200 RUNS=1 benches/signing.sh
#
# Environment:
#   COUNT             archives pushed (hourly names going back from 2026-12-01)   (default 500)
#   PUSH_JOBS         offsite pushes running at once while seeding (untimed)      (default 4)
#   RUNS              repetitions of every timed command; the median wall is kept (default 3)
#   BENCH_DIR         work directory; default a fresh `mktemp -d` under /tmp, removed on exit
#   CARGO_TARGET_DIR  cargo target directory (default $HOME/.cache/offsite/target)
#
# Needs cargo, python3, jq, ssh-keygen (openssh-client) and /usr/bin/time (installed when
# missing, from Debian).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-500}
PUSH_JOBS=${PUSH_JOBS:-4}
RUNS=${RUNS:-3}
need_posint COUNT PUSH_JOBS RUNS

apt_need time
command -v jq >/dev/null || apt_install jq || die "jq is needed"
command -v ssh-keygen >/dev/null || apt_install openssh-client || die "ssh-keygen is needed"
need_cmd python3
need_cmd cargo

build_offsite
setup_work offsite-signing-bench
URL=file://$WORK/dest

# --- seeding (untimed) ---------------------------------------------------------------------------
RECIPIENT=$("$OFFSITE" keygen -o "$WORK/key.txt" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen failed"; }
PUBLIC=$("$OFFSITE" keygen --signing --comment host-a -o "$WORK/signing.key" 2>"$LOGS/keygen.err") \
    || { cat "$LOGS/keygen.err" >&2; die "offsite keygen --signing failed"; }
ALLOWED=$WORK/allowed_signers
echo "host-a $PUBLIC" >"$ALLOWED"
SRC=$WORK/src
mkdir -p "$SRC"
python3 - "$SRC" "$COUNT" <<'PY'
import datetime, os, sys
d, n = sys.argv[1], int(sys.argv[2])
t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
for i in range(n):
    t = t0 - datetime.timedelta(hours=i)
    with open(os.path.join(d, t.strftime("app-backup-%Y%m%d_%H%M%S.tar.gz")), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
PY
log "pushing $COUNT signed archives, $PUSH_JOBS at a time (untimed)"
export OFFSITE RECIPIENT URL WORK
ls "$SRC" | sed "s|^|$SRC/|" | xargs -P "$PUSH_JOBS" -n 1 sh -c \
    '"$OFFSITE" push "$1" --to "$URL" -r "$RECIPIENT" --sign-with "$WORK/signing.key" >/dev/null 2>>"$0" || { echo "push $1 failed" >>"$0"; exit 255; }' \
    "$LOGS/push.err" || { tail -n 20 "$LOGS/push.err" >&2; die "seeding pushes failed"; }

# The stock-tools check of every manifest's signature, as README's "Checking by hand" shows it.
cat >"$WORK/stock-verify.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
good=0
for m in "$1"/*.manifest.json; do
    jq -j .signed "$m" >"$2/signed.json"
    jq -r .signature "$m" >"$2/sig"
    ssh-keygen -Y verify -f "$3" -I host-a -n offsite-manifest -s "$2/sig" <"$2/signed.json" >/dev/null
    good=$((good + 1))
done
echo "$good signatures good"
SH
chmod +x "$WORK/stock-verify.sh"

# --- measuring -----------------------------------------------------------------------------------
lines_are() { [[ $(grep -c "$2" "$1") == "$3" ]] || { echo "$SCRIPT: expected $3 lines matching '$2' in $1, got $(grep -c "$2" "$1")" >&2; return 1; }; }
check_ls() { lines_are "$1" ' complete ' "$COUNT"; }
check_verify() { grep -q "^$COUNT of $COUNT copies checked good\.$" "$1"; }
check_stock() { grep -q "^$COUNT signatures good$" "$1"; }

log "timing, $RUNS run(s) each, $COUNT signed archives at $URL"
measure stock prep_none check_stock -- "$WORK/stock-verify.sh" "$WORK/dest" "$WORK" "$ALLOWED"
measure ls-unchecked prep_none check_ls -- "$OFFSITE" ls "$URL"
measure ls-trusted prep_none check_ls -- "$OFFSITE" ls "$URL" --trusted-file "$ALLOWED"
measure verify-trusted prep_none check_verify -- "$OFFSITE" verify "$URL" --trusted-file "$ALLOWED"

# --- report --------------------------------------------------------------------------------------
echo
echo "offsite signing benchmark: $COUNT signed archives on a local disk"
machine_line
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1) ($OFFSITE)"
echo "  ssh-keygen: $(ssh -V 2>&1 | head -n 1)"
echo "  runs:     $RUNS per command (median wall/CPU, max RSS)"
declare -A DESC=(
    [stock]="jq + ssh-keygen -Y verify, every manifest"
    [ls-unchecked]="offsite ls URL                (no trusted keys)"
    [ls-trusted]="offsite ls URL --trusted-file F (every signature)"
    [verify-trusted]="offsite verify URL --trusted-file F (quick)"
)
print_table
echo
echo "the stock-tools loop takes this many times as long, wall (CPU):"
for l in ls-unchecked ls-trusted verify-trusted; do echo "  $(printf '%-16s' "$l") $(ratios stock "$l")"; done
echo "checking every signature adds to ls: $(ratios ls-trusted ls-unchecked)"
