#!/usr/bin/env bash
# benches/snapshot.sh: EBS snapshots of VOLUMES volumes on moto, each copied to a second region
# (issue 15), the way the seed's job did it by hand against the way offsite does it by policy,
# in one run against one moto server, so the figures compare as ratios:
#
#   aws-loop       per volume `aws ec2 create-snapshot`, then `aws ec2 copy-snapshot` into
#                  us-west-2 (2 x VOLUMES CLI runs; no tags, no rerun safety, no retention)
#   offsite        `offsite snapshot create --policy P --wait` (volumes by tag, tagged
#                  snapshots, copies to us-west-2 carrying the tags, waits for both)
#   offsite-rerun  the same command again with the same token: finds every snapshot and copy,
#                  makes nothing (what a retried CronJob pod costs)
#   offsite-prune  `offsite snapshot prune --policy P` (keep-last 1 in both regions) after the
#                  runs above
#
# moto is never a fair speed target (a Python server; ../shared/TESTING.md): the figures say how
# the client's work compares (processes, requests, CPU-seconds, peak RSS), not what EC2 takes.
#
# Usage:
#   benches/snapshot.sh
#   VOLUMES=5 RUNS=1 OFFSITE_BIN=target/debug/offsite benches/snapshot.sh
#
# Environment:
#   VOLUMES           volumes to snapshot                                        (default 20)
#   RUNS              repetitions of every timed command; the median wall is kept (default 3)
#   OFFSITE_BIN       an offsite binary to use instead of building --release    (default: build)
#   BENCH_DIR         work directory; default a fresh `mktemp -d` under /tmp, removed on exit
#   CARGO_TARGET_DIR  cargo target directory        (default $HOME/.cache/offsite/target)
#   OFFSITE_TOOLS_DIR where tests/emulators/install.sh keeps moto (default $HOME/.cache/offsite/tools)
#
# Needs cargo, python3, curl, /usr/bin/time and the aws CLI (Debian's /usr/bin/aws, else the one
# on PATH). Credentials are made-up test values (moto accepts any).

set -euo pipefail
. "$(dirname "$0")/lib.sh"

VOLUMES=${VOLUMES:-20}
RUNS=${RUNS:-3}
need_posint VOLUMES RUNS

# --- tools -------------------------------------------------------------------------------------
apt_need time
need_cmd python3
need_cmd curl
if [[ -x /usr/bin/aws ]]; then
    AWS=/usr/bin/aws
else
    AWS=$(command -v aws) || die "no aws CLI: /usr/bin/aws missing and none on PATH"
fi
install_emulators moto
MOTO=$(latest_tool 'moto-*')
[[ -x $MOTO/bin/moto_server ]] || die "no moto under $TOOLS after tests/emulators/install.sh"
if [[ -n ${OFFSITE_BIN:-} ]]; then
    OFFSITE=$(cd "$(dirname "$OFFSITE_BIN")" && pwd)/$(basename "$OFFSITE_BIN")
    [[ -x $OFFSITE ]] || die "OFFSITE_BIN=$OFFSITE_BIN is not an executable"
    BUILD="given ($OFFSITE)"
else
    build_offsite
    BUILD="release ($OFFSITE)"
fi
setup_work offsite-snapshot-bench

# --- server ------------------------------------------------------------------------------------
PORT=$(free_port)
EP=http://127.0.0.1:$PORT
SERVER_NAME=moto SERVER_LOG=$LOGS/moto.log
start_server "$EP/moto-api/" 300 "$MOTO/bin/moto_server" -H 127.0.0.1 -p "$PORT"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$EP AWS_PAGER="" OFFSITE_SNAPSHOT_POLL_SECONDS=0.2
unset AWS_PROFILE AWS_SESSION_TOKEN

# --- volumes (untimed) ---------------------------------------------------------------------------
log "making $VOLUMES volumes tagged backup=bench in us-east-1"
"$MOTO/bin/python" - "$EP" "$VOLUMES" <<'PY'
import boto3, sys
ep, n = sys.argv[1], int(sys.argv[2])
ec2 = boto3.client("ec2", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
for i in range(n):
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=8,
                      TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": "bench"}]}])
PY
VOLS=$("$MOTO/bin/python" -c "
import boto3
ec2 = boto3.client('ec2', endpoint_url='$EP', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='y')
print(' '.join(v['VolumeId'] for v in ec2.describe_volumes(Filters=[{'Name': 'tag:backup', 'Values': ['bench']}])['Volumes']))")
cat >"$WORK/policy.toml" <<EOF
version = 1
name = "bench"
[encryption]
unencrypted = true
[[destination]]
name = "local"
url = "file://$WORK/archives"
[[snapshots]]
provider = "aws"
region = "us-east-1"
select = "backup=bench"
retention = { keep-last = 1 }
copy-to = [{ region = "us-west-2", retention = { keep-last = 1 } }]
EOF

# --- measuring -----------------------------------------------------------------------------------
count() { # REGION TAG-FILTER...: snapshots there carrying the tags
    "$MOTO/bin/python" -c "
import boto3, sys
ec2 = boto3.client('ec2', endpoint_url='$EP', region_name='$1', aws_access_key_id='x', aws_secret_access_key='y')
f = [{'Name': 'tag:' + k, 'Values': [v]} for k, v in (a.split('=', 1) for a in sys.argv[1:])]
print(len(ec2.describe_snapshots(Filters=f)['Snapshots']) if f else 0)" "${@:2}"
}
aws_loop() {
    local v s
    for v in $VOLS; do
        s=$("$AWS" --endpoint-url "$EP" --region us-east-1 ec2 create-snapshot --volume-id "$v" \
            --description "by hand" --query SnapshotId --output text)
        "$AWS" --endpoint-url "$EP" --region us-west-2 ec2 copy-snapshot --source-region us-east-1 \
            --source-snapshot-id "$s" --description "by hand" >/dev/null
    done
}
export -f aws_loop
export AWS EP VOLS
check_made() { [[ $(grep -c ' created' "$1") == "$VOLUMES" && $(grep -c 'copy of' "$1") == "$VOLUMES" ]]; }
check_found() { [[ $(grep -c 'found (same token)' "$1") == "$VOLUMES" ]]; }
check_pruned() { grep -q 'snapshot(s) deleted' "$1"; }
log "timing, $RUNS run(s) each: $VOLUMES volumes, each snapshotted in us-east-1 and copied to us-west-2"
measure aws-loop prep_none check_ok -- bash -c aws_loop
measure offsite prep_none check_made -- bash -c '"$0" snapshot create --policy "$1" --wait --token "bench-$2"' "$OFFSITE" "$WORK/policy.toml" "@BUCKET@"
measure offsite-rerun prep_none check_found -- bash -c '"$0" snapshot create --policy "$1" --wait --token "bench-offsite-1"' "$OFFSITE" "$WORK/policy.toml"
KEEP=$(count us-east-1 offsite-policy=bench)
measure offsite-prune prep_none check_pruned -- "$OFFSITE" snapshot prune --policy "$WORK/policy.toml"
LEFT_EAST=$(count us-east-1 offsite-policy=bench)
LEFT_WEST=$(count us-west-2 offsite-policy=bench)

# --- report --------------------------------------------------------------------------------------
echo
echo "offsite snapshot benchmark: $VOLUMES EBS volumes on moto, each snapshotted and copied to a second region"
machine_line
echo "  offsite:  $("$OFFSITE" --version 2>&1 | head -n 1), $BUILD"
echo "  aws:      $("$AWS" --version 2>&1 | head -n 1) ($AWS)"
echo "  server:   moto ($MOTO)"
echo "  runs:     $RUNS per command (median wall/CPU, max RSS)"
echo "  offsite's snapshots before prune: $KEEP in us-east-1; after: $LEFT_EAST in us-east-1, $LEFT_WEST in us-west-2 (keep-last 1 per volume)"
declare -A DESC=(
    [aws-loop]="aws ec2 create-snapshot + copy-snapshot, per volume"
    [offsite]="offsite snapshot create --policy --wait"
    [offsite-rerun]="the same, rerun with the same token"
    [offsite-prune]="offsite snapshot prune --policy"
)
print_table
echo
echo "ratios, wall (CPU):"
echo "  offsite / aws-loop         $(ratios offsite aws-loop)"
echo "  offsite-rerun / offsite    $(ratios offsite-rerun offsite)"
