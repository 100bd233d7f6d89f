#!/usr/bin/env bash
# Starts one SeaweedFS `weed server` (master, volume server, filer, S3 gateway) on DIR and prints
# "PID S3_PORT" when it takes writes. Every HTTP and gRPC port is free and on loopback; they are
# chosen once and kept in DIR/ports, so a server killed and started again on DIR comes back on the
# same ports with its data (start.sh starts the shared one; a fault test kills and restarts its own).
#
# The identity in -s3.config makes it require our test credentials (loopback-only, not secrets).
# As on AWS, no bucket is created by a PutObject and no non-empty bucket is deleted. One volume per
# bucket (WEED_MASTER_VOLUME_GROWTH_COPY_1; the default grows 7) and -volume.max=1000 (default 8,
# used up by the second bucket: writes then fail with 500 InternalError). A 1 s election timeout
# (default 10 s) because a master restarted on its data waits for one before it leads: ~3 s
# instead of ~20 s. Telemetry, Iceberg, Lance off.
set -euo pipefail
dir="$1"
tools="${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}"
mkdir -p "$dir/data"
if [ ! -s "$dir/ports" ]; then
  # Eight distinct free ports, all held open while choosing so none repeats.
  python3 -c 'import socket; ss=[socket.socket() for _ in range(8)]; [s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])' \
    > "$dir/ports"
fi
read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc < "$dir/ports"
cat > "$dir/s3.json" <<'JSON'
{"identities": [{"name": "offsite-test",
  "credentials": [{"accessKey": "offsite-test", "secretKey": "offsite-test-secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
weed_bin=$(ls -d "$tools"/seaweedfs-*/bin/weed | sort -V | tail -n 1)
WEED_MASTER_VOLUME_GROWTH_COPY_1=1 "$weed_bin" server -dir="$dir/data" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$master" -master.port.grpc="$master_grpc" -master.telemetry=false \
  -master.volumeSizeLimitMB=64 -master.electionTimeout=1s \
  -volume.port="$volume" -volume.port.grpc="$volume_grpc" -volume.max=1000 \
  -volume.preStopSeconds=0 \
  -filer -filer.port="$filer" -filer.port.grpc="$filer_grpc" \
  -s3 -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.config="$dir/s3.json" -s3.autoCreateBucket=false \
  -s3.allowDeleteBucketNotEmpty=false >> "$dir/seaweedfs.log" 2>&1 < /dev/null &
pid=$!

# Waits until URL's body contains WANT (any answer when WANT is empty), for up to 30 s.
wait_for() {
  local url="$1" want="$2"
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2> /dev/null; then break; fi
    if [ -z "$want" ]; then
      if curl -s -o /dev/null "$url"; then return 0; fi
    elif [[ "$(curl -s "$url" || true)" == *"$want"* ]]; then return 0; fi
    sleep 0.1
  done
  kill "$pid" 2> /dev/null || true
  echo "seaweedfs did not start; its log:" >&2; cat "$dir/seaweedfs.log" >&2; exit 1
}
wait_for "http://127.0.0.1:$s3/" ""
# S3 answers before the volume server has joined the master (writes fail until then): ~0 s
# after, or ~4 s when its first heartbeat came before the master's election.
wait_for "http://127.0.0.1:$master/dir/status" '"DataNodes":[{'
echo "$pid $s3"
