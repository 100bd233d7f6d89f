#!/usr/bin/env bash
# One command for the main job on local disk: build, make a sample archive, push it encrypted to
# two local directories, list, verify, restore and compare. The key made here is a DEMO KEY:
# never use it for real backups.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}"
cargo build --release --quiet --bin offsite
offsite="$CARGO_TARGET_DIR/release/offsite"
demo="${DEMO_DIR:-/tmp/offsite-demo}"
rm -rf "$demo" && mkdir -p "$demo/src"
export OFFSITE_CACHE_DIR="$demo/cache"

echo "sample data made by examples/demo.sh at $(date -u)" > "$demo/src/README.txt"
head -c 5000000 /dev/urandom > "$demo/src/data.bin"
archive="$demo/app-backup-$(date -u +%Y%m%d_%H%M%S).tar.gz"
tar -czf "$archive" -C "$demo" src

recipient=$("$offsite" keygen -o "$demo/demo-key.txt")
echo "demo recipient: $recipient"
set -x
"$offsite" push "$archive" --to "file://$demo/local" --to "file://$demo/usb" -r "$recipient"
"$offsite" ls "file://$demo/local"
"$offsite" verify "file://$demo/local" "file://$demo/usb"
"$offsite" verify --deep -i "$demo/demo-key.txt" "file://$demo/usb"
"$offsite" restore "file://$demo/local" "file://$demo/usb" --latest -o "$demo/restored.tar.gz" -i "$demo/demo-key.txt"
cmp "$archive" "$demo/restored.tar.gz"
set +x
echo "demo OK: restored archive is byte-identical ($demo)"
