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

# SeaweedFS, a production object store, by its own script (a fault test restarts one too).
read -r sw_pid sw_s3 < <("$here/seaweedfs.sh" "$dir/seaweedfs")
echo "$sw_pid" >> "$dir/pids"

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
# moto's venv has boto3, a stock S3 client for requests offsite never sends (a delete without
# a version id, which leaves a delete marker).
echo "export OFFSITE_TEST_MOTO_PYTHON=$(ls -d "$tools"/moto-*/bin/python | sort -V | tail -n 1)"
echo "export OFFSITE_TEST_S3S=http://127.0.0.1:$s3s_port"
echo "export OFFSITE_TEST_S3S_DIR=$dir/s3s-data"
echo "export OFFSITE_TEST_SEAWEEDFS=http://127.0.0.1:$sw_s3"
echo "export OFFSITE_TEST_SEAWEEDFS_SCRIPT=$here/seaweedfs.sh"
# The binary itself, for tests that kill a server of their own and restart it on its data.
echo "export OFFSITE_TEST_S3S_BIN=$(ls "$tools"/s3s-fs-*/bin/s3s-fs | sort -V | tail -n 1)"
echo "export OFFSITE_TEST_GCS=http://127.0.0.1:$gcs_port"
# Python with Microsoft's azure-storage-blob, for the no-lock-in test.
echo "export OFFSITE_TEST_AZURE_PYTHON=$(ls -d "$tools"/azure-storage-blob-*/bin/python | sort -V | tail -n 1)"
# Debian's promtool, node_exporter and Pushgateway binaries (the metrics tests start their own).
echo "export OFFSITE_TEST_PROMETHEUS_BIN=$(ls -d "$tools"/prometheus-debian-*/usr/bin | sort -V | tail -n 1)"
echo "export OFFSITE_TEST_AZURITE=http://127.0.0.1:$azurite_port/devstoreaccount1"
