#!/usr/bin/env bash
# One command for the main job on local disk, by the local-only preset
# (policies/presets/local.toml, its paths moved under the demo directory): build, make a
# backup job's output (archive, checksums.sha256, metadata.json), then plan, push (signed),
# status, drill, status again, prune --dry-run (the retention plan), and restore, comparing the
# bytes. The keys made here (age identity, signing key) are DEMO KEYS: never use them for real
# backups.
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${DEMO_DIR:-/tmp/offsite-demo}"
# The demo starts from a clean directory, but only removes one it made itself (marked by
# .offsite-demo): a DEMO_DIR that holds anything else is refused and left as it is.
if [ -e "$demo" ] && [ ! -e "$demo/.offsite-demo" ] && [ -n "$(ls -A "$demo" 2>/dev/null || echo x)" ]; then
    echo "examples/demo.sh: $demo exists and was not made by this demo (no $demo/.offsite-demo): refusing to delete it; set DEMO_DIR to a new or empty directory" >&2
    exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/offsite/target}"
cargo build --release --quiet --bin offsite
offsite="$CARGO_TARGET_DIR/release/offsite"
if [ -e "$demo/.offsite-demo" ]; then rm -rf "$demo"; fi
mkdir -p "$demo/src" "$demo/metrics" && touch "$demo/.offsite-demo"
export OFFSITE_CACHE_DIR="$demo/cache"

# The backup job.
echo "sample data made by examples/demo.sh at $(date -u)" > "$demo/src/README.txt"
head -c 5000000 /dev/urandom > "$demo/src/data.bin"
name="app-backup-$(date -u +%Y%m%d_%H%M%S).tar.gz"
tar -czf "$demo/$name" -C "$demo" src
(cd "$demo" && sha256sum "$name" > checksums.sha256)
echo "{\"host\": \"$(hostname)\", \"source\": \"$demo/src\"}" > "$demo/metadata.json"

# The preset, pointed into the demo directory.
recipient=$("$offsite" keygen -o "$demo/demo-key.txt")
echo "$recipient" > "$demo/recipients.txt"
# The signing key push signs with, and the allowed_signers file readers trust it by.
signer=$("$offsite" keygen --signing --comment demo -o "$demo/demo-signing.key")
echo "demo $signer" > "$demo/allowed_signers"
sed -e "s|/etc/offsite/recipients.txt|$demo/recipients.txt|" \
    -e "s|/etc/offsite/signing.key|$demo/demo-signing.key|" \
    -e "s|/etc/offsite/allowed_signers|$demo/allowed_signers|" \
    -e "s|file:///var/backups/offsite|file://$demo/local|" \
    -e "s|file:///mnt/usb/offsite|file://$demo/usb|" \
    policies/presets/local.toml > "$demo/policy.toml"
policy="$demo/policy.toml"   # or: export OFFSITE_POLICY=$policy

set -x
"$offsite" plan --policy "$policy"
"$offsite" push "$demo/$name" --policy "$policy" --checksums "$demo/checksums.sha256" --metadata "$demo/metadata.json" \
  --metrics-file "$demo/metrics/offsite-push.prom"
"$offsite" ls --policy "$policy"
# Nothing has proven a copy yet: status says verify-every is not met (exit 3).
"$offsite" status --policy "$policy" || test $? -eq 3
"$offsite" drill --policy "$policy" -i "$demo/demo-key.txt"
"$offsite" status --policy "$policy" --metrics-file "$demo/metrics/offsite-status.prom"
"$offsite" prune --policy "$policy" --dry-run
"$offsite" restore --policy "$policy" --latest -o "$demo/restored.tar.gz" -i "$demo/demo-key.txt"
cmp "$demo/$name" "$demo/restored.tar.gz"
set +x
echo "demo OK: placement met, every copy signed and proven, the restored archive is byte-identical ($demo)"
