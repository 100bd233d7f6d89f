#!/usr/bin/env bash
# Starts the emulators on free loopback ports and prints `export` lines for the tests:
#   eval "$(tests/emulators/start.sh DIR)"     (tests/run does this, and stops them at the end)
# DIR holds their data and logs; the PIDs are written to DIR/pids.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$1"
tools="${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}"
mkdir -p "$dir"
: > "$dir/pids"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# N distinct free ports on one line (all held open while choosing, so none repeats).
free_ports() { python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' "$1"; }
# Waits until URL answers at all or, given WANT, until its body contains WANT.
wait_http() {
  local url="$1" name="$2" log="$3" want="${4:-}"
  for _ in $(seq 1 200); do
    if [ -z "$want" ]; then
      if curl -s -o /dev/null "$url"; then return 0; fi
    elif [[ "$(curl -s "$url" || true)" == *"$want"* ]]; then return 0; fi
    sleep 0.1
  done
  echo "$name did not start; its log:" >&2; cat "$log" >&2; exit 1
}

moto_port=$(free_port)
"$tools"/moto-*/bin/moto_server -H 127.0.0.1 -p "$moto_port" > "$dir/moto.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$moto_port/moto-api/" moto "$dir/moto.log"

s3s_port=$(free_port)
mkdir -p "$dir/s3s-data"
# Test credentials for a loopback-only server, not secrets.
"$tools"/s3s-fs-*/bin/s3s-fs --host 127.0.0.1 --port "$s3s_port" \
  --access-key offsite-test --secret-key offsite-test-secret "$dir/s3s-data" > "$dir/s3s.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$s3s_port/" s3s-fs "$dir/s3s.log"

# SeaweedFS: one `weed server` process (master, volume server, filer, S3 gateway), every HTTP and
# gRPC port free and on loopback. The identity in -s3.config makes it require our test
# credentials (loopback-only, not secrets). As on AWS, no bucket is created by a PutObject and no
# non-empty bucket is deleted. One volume per bucket (WEED_MASTER_VOLUME_GROWTH_COPY_1; the
# default grows 7) and -volume.max=1000 (default 8, used up by the second bucket: writes then
# fail with 500 InternalError). A 1 s election timeout (default 10 s) because a master restarted on
# its data waits for one before it leads: ~3 s instead of ~20 s. Telemetry, Iceberg, Lance off.
read -r sw_master sw_master_grpc sw_volume sw_volume_grpc sw_filer sw_filer_grpc sw_s3 sw_s3_grpc \
  < <(free_ports 8)
mkdir -p "$dir/seaweedfs"
cat > "$dir/seaweedfs-s3.json" <<'EOF'
{"identities": [{"name": "offsite-test",
  "credentials": [{"accessKey": "offsite-test", "secretKey": "offsite-test-secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
weed_bin=$(ls -d "$tools"/seaweedfs-*/bin/weed | sort -V | tail -n 1)
WEED_MASTER_VOLUME_GROWTH_COPY_1=1 "$weed_bin" server -dir="$dir/seaweedfs" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$sw_master" -master.port.grpc="$sw_master_grpc" -master.telemetry=false \
  -master.volumeSizeLimitMB=64 -master.electionTimeout=1s \
  -volume.port="$sw_volume" -volume.port.grpc="$sw_volume_grpc" -volume.max=1000 \
  -volume.preStopSeconds=0 \
  -filer -filer.port="$sw_filer" -filer.port.grpc="$sw_filer_grpc" \
  -s3 -s3.port="$sw_s3" -s3.port.grpc="$sw_s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.config="$dir/seaweedfs-s3.json" -s3.autoCreateBucket=false \
  -s3.allowDeleteBucketNotEmpty=false > "$dir/seaweedfs.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$sw_s3/" seaweedfs "$dir/seaweedfs.log"
# S3 answers before the volume server has joined the master (writes fail until then): ~0 s
# after, or ~4 s when its first heartbeat came before the master's election.
wait_http "http://127.0.0.1:$sw_master/dir/status" seaweedfs "$dir/seaweedfs.log" '"DataNodes":[{'

# gcp-storage-emulator through our launcher, which patches its gaps (see gcs_emulator.py).
gcs_port=$(free_port)
gcs_python=$(ls -d "$tools"/gcp-storage-emulator-*/bin/python | sort -V | tail -n 1)
"$gcs_python" "$here/gcs_emulator.py" --host 127.0.0.1 --port "$gcs_port" \
  > "$dir/gcs.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$gcs_port/" gcs-emulator "$dir/gcs.log"

# Azurite: --loose and --skipApiVersionCheck because the new SDK sends an API version Azurite
# does not know; --disableTelemetry because it phones home by default.
azurite_port=$(free_port)
mkdir -p "$dir/azurite"
azurite_bin=$(ls -d "$tools"/azurite-*/node_modules/.bin/azurite-blob | sort -V | tail -n 1)
"$azurite_bin" --blobHost 127.0.0.1 --blobPort "$azurite_port" --location "$dir/azurite" \
  --loose --skipApiVersionCheck --disableTelemetry > "$dir/azurite.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$azurite_port/devstoreaccount1?comp=list" azurite "$dir/azurite.log"

echo "export OFFSITE_TEST_MOTO=http://127.0.0.1:$moto_port"
echo "export OFFSITE_TEST_S3S=http://127.0.0.1:$s3s_port"
echo "export OFFSITE_TEST_S3S_DIR=$dir/s3s-data"
echo "export OFFSITE_TEST_SEAWEEDFS=http://127.0.0.1:$sw_s3"
# The binary itself, for tests that kill a server of their own and restart it on its data.
echo "export OFFSITE_TEST_S3S_BIN=$(ls "$tools"/s3s-fs-*/bin/s3s-fs | sort -V | tail -n 1)"
echo "export OFFSITE_TEST_GCS=http://127.0.0.1:$gcs_port"
echo "export OFFSITE_TEST_AZURITE=http://127.0.0.1:$azurite_port/devstoreaccount1"
