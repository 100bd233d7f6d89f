#!/usr/bin/env bash
# A post-backup hook: makes the archive with its checksums.sha256 and metadata.json, then hands
# all three to offsite, which checks the archive against its checksum, encrypts it, signs its
# manifests with this host's key (the policy's [signing] key-file), places the copies the policy
# asks for and exits non-zero when placement is not met (the job alerts).
#
#   backup.sh SOURCE_DIR [WORK_DIR]
#
# Environment: OFFSITE_POLICY (default /etc/offsite/policy.toml), OFFSITE_METRICS_DIR (the
# node_exporter textfile directory; default /var/lib/node_exporter/textfile_collector),
# BACKUP_NAME (default app-backup).
#
# Signing (README, Signing): once per host, make the key the policy's key-file names and put
# the public line it prints, after a name, into allowed_signers on every host that reads:
#   offsite keygen --signing --comment "$(hostname)" -o /etc/offsite/signing.key
set -euo pipefail

src="${1:?usage: backup.sh SOURCE_DIR [WORK_DIR]}"
work="${2:-/var/backups/work}"
policy="${OFFSITE_POLICY:-/etc/offsite/policy.toml}"
metrics_dir="${OFFSITE_METRICS_DIR:-/var/lib/node_exporter/textfile_collector}"
name="${BACKUP_NAME:-app-backup}-$(date -u +%Y%m%d_%H%M%S).tar.gz"

# Before making the archive: the policy, this host's signing key (missing, readable by others,
# or with a passphrase) and the trusted keys must be usable; plan exits 2 when they are not, and
# push would refuse too, after the time spent on tar. (Exit 3, a placement rule the policy can
# never meet, is push's to report.)
plan_status=0
offsite plan --policy "$policy" >/dev/null || plan_status=$?
if [ "$plan_status" -ne 0 ] && [ "$plan_status" -ne 3 ]; then
  echo "backup.sh: offsite plan --policy $policy failed (exit $plan_status); nothing was backed up" >&2
  exit "$plan_status"
fi

mkdir -p "$work"
cd "$work"
tar -czf "$name" -C "$(dirname "$src")" "$(basename "$src")"
sha256sum "$name" > checksums.sha256
cat > metadata.json <<JSON
{"host": "$(hostname)", "source": "$src", "made": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "tool": "tar+gzip"}
JSON

# Exit 0: stored everywhere, placement met. 3: stored, but a destination failed or placement is
# not met (rerun: it resumes). 1: stored nowhere. 2: usage or configuration.
status=0
offsite push "$name" --policy "$policy" --checksums checksums.sha256 --metadata metadata.json \
  --metrics-file "$metrics_dir/offsite-push.prom" || status=$?

# The local archive is no longer needed once it is stored (the policy's local destination, if
# any, holds its own copy).
if [ "$status" -eq 0 ]; then
  rm -f "$name" checksums.sha256 metadata.json
  # Retention, in place of RETENTION_DAYS and find -mtime -delete: the policy's GFS rules, per
  # destination, behind the rails (never the newest archive, never a locked copy, nothing
  # while backups look stopped). Exit 5: a rail refused and nothing was deleted. Archives no
  # trusted key signed are listed, never deleted here (`prune --delete-untrusted`, by hand,
  # after checking them).
  offsite prune --policy "$policy" --metrics-file "$metrics_dir/offsite-prune.prom" || status=$?
fi
exit "$status"
