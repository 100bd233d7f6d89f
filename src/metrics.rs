//! Prometheus metrics of a job run (push, status, drill, prune, replicate): a textfile for node_exporter's
//! textfile collector (`--metrics-file`, written to a temporary file beside it and renamed, so
//! the collector never reads half a file) and a push to a Pushgateway (`--pushgateway URL`,
//! for CronJobs that end before anyone scrapes them).
//!
//! Every family is declared once in [`FAMILIES`] with its help text, so the files of different
//! commands in one textfile directory agree (node_exporter merges them). Samples carry the
//! labels `command` and `policy` (and `destination` or `series` where they are per item); a
//! Pushgateway push groups them under `job="offsite"` with the same `command` and `policy`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

/// Every metric offsite writes: name, help. All are gauges.
pub const FAMILIES: &[(&str, &str)] = &[
    ("offsite_last_run_timestamp_seconds", "When the command last ran (Unix time)."),
    ("offsite_last_success_timestamp_seconds", "When the command last succeeded (Unix time); kept from the previous file when this run failed."),
    ("offsite_run_success", "1 when the command's last run succeeded (exit 0), else 0."),
    ("offsite_run_exit_code", "The exit status of the command's last run."),
    ("offsite_run_duration_seconds", "How long the command's last run took."),
    ("offsite_archive_size_bytes", "Plaintext size of the archive the last push stored."),
    ("offsite_archive_stored_bytes", "Stored (encrypted) size of the archive the last push stored."),
    ("offsite_destination_up", "1 when the destination took the last push, or could be read by status or drill, else 0."),
    ("offsite_placement_met", "1 when the placement rule is met (push: this archive; status: every series, its newest complete archive and the older ones where retention keeps them), else 0."),
    ("offsite_placement_copies", "Complete copies of the newest complete archive of the series."),
    ("offsite_placement_older_unmet", "Older archives of the series short of placement at the destinations whose retention keeps them."),
    ("offsite_newest_archive_timestamp_seconds", "Creation time of the newest complete archive of the series (Unix time)."),
    ("offsite_newest_archive_age_seconds", "Age of the newest complete archive of the series."),
    ("offsite_rpo_seconds", "The policy's rpo."),
    ("offsite_rpo_met", "1 when the newest complete archive of the series is within rpo, else 0."),
    ("offsite_archives_complete", "Archives with a complete copy at the destination."),
    ("offsite_copies_damaged", "Copies at the destination that are missing, truncated, unreadable, or failed their last deep check."),
    ("offsite_uploads_incomplete", "Uploads at the destination that never committed (data without a manifest)."),
    ("offsite_archives_untrusted", "Whole archives at the destination whose manifest no trusted key signed (counted as no copy)."),
    ("offsite_archives_future_dated", "Whole archives at the destination whose creation time runs ahead of the clocks that judge it (counted as no copy)."),
    ("offsite_copies_locked", "Complete copies at the destination under a retention lock now."),
    ("offsite_locked_until_timestamp_seconds", "The latest retain-until among the destination's locked copies (Unix time)."),
    ("offsite_last_proof_timestamp_seconds", "When a deep verify or drill last passed at the destination (Unix time)."),
    ("offsite_last_proof_age_seconds", "Age of the last passed deep verify or drill at the destination."),
    ("offsite_verify_every_seconds", "The policy's verify-every."),
    ("offsite_rules_unmet", "Rules of the policy (placement, rpo, rto, verify-every, snapshots) that do not hold."),
    ("offsite_drill_copies_proven", "Copies the last drill restored and proved."),
    ("offsite_drill_copies_failed", "Copies the last drill found damaged or could not read."),
    ("offsite_prune_archives_kept", "Archive copies the last prune kept, across destinations."),
    ("offsite_prune_archives_planned", "Archive copies the last prune's plan deletes, across destinations."),
    ("offsite_prune_archives_deleted", "Archive copies and orphans the last prune deleted."),
    ("offsite_prune_refused", "1 when a rail refused the last prune's plan (nothing deleted), else 0."),
    ("offsite_replicate_copied", "Objects and archives the last replication copied to the destination."),
    ("offsite_replicate_skipped", "Objects and archives the last replication found the same at the destination."),
    ("offsite_replicate_deleted", "Keys the last replication deleted at the destination (--delete)."),
    ("offsite_replicate_bytes", "Bytes the last replication copied to the destination."),
    ("offsite_replicate_failures", "Items the last replication could not copy, delete or verify."),
    ("offsite_replicate_untrusted", "Source archives the last replication left out because their manifest no trusted key signed."),
    ("offsite_replicate_not_replicated", "Archives without a manifest at the source, left out by the last replication."),
    ("offsite_snapshot_newest_timestamp_seconds", "Creation time of the newest completed snapshot of the volume in the region (snapshot create: the one just made), Unix time."),
    ("offsite_snapshot_newest_age_seconds", "Age of the newest completed snapshot of the volume in the region."),
    ("offsite_snapshot_rpo_met", "1 when the newest completed snapshot of the volume in the region is within rpo, else 0."),
    ("offsite_snapshots_completed", "Completed snapshots of the policy in the region."),
    ("offsite_snapshots_pending", "Snapshots and copies of the policy still being made in the region."),
    ("offsite_snapshot_retired", "1 for a volume taken out of its section's volumes: shown by status, judged by no rpo."),
    ("offsite_snapshots_failed", "Snapshots of the policy the provider failed, in the region."),
    ("offsite_snapshot_failures", "Snapshots and copies the last snapshot create could not make."),
    ("offsite_snapshot_prune_kept", "Snapshots the last snapshot prune kept, across regions."),
    ("offsite_snapshot_prune_planned", "Snapshots the last snapshot prune's plan deletes, across regions."),
    ("offsite_snapshot_prune_deleted", "Snapshots the last snapshot prune deleted."),
    ("offsite_replicate_deletes_refused", "1 when a guard refused the last replication's deletions (nothing deleted), else 0."),
    ("offsite_push_seconds", "How long the last push took to store the archive at the destination, from its start until the provider held the whole data object."),
    ("offsite_push_bytes_per_second", "Stored bytes per second of the last push to the destination."),
    ("offsite_restore_seconds", "How long the restore of a drill took at the destination (drill: this run's; status: the newest a passed drill recorded)."),
    ("offsite_restore_bytes", "Stored bytes that restore read back."),
    ("offsite_restore_bytes_per_second", "Stored bytes per second that restore reached."),
    ("offsite_restore_estimate_seconds", "Estimated time to restore the newest complete archive of the series from the destination: the storage class's thaw time plus its size at the destination's last measured throughput."),
    ("offsite_rto_seconds", "The policy's rto."),
    ("offsite_rto_met", "1 when a destination holding the newest complete archive of the series can restore it within rto, else 0; absent while not judged (no drill measured a destination that could)."),
];

/// Where a job's metrics go, shared by every job command.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Write the run's metrics as a Prometheus textfile (for node_exporter's textfile
    /// collector: a path ending in .prom in its directory), replaced atomically.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push the run's metrics to a Prometheus Pushgateway (http://host:9091), grouped by
    /// job="offsite", command and policy.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// One sample.
#[derive(Debug, Clone)]
struct Sample {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

/// The samples of one run.
#[derive(Debug, Clone)]
pub struct Metrics {
    command: &'static str,
    policy: String,
    samples: Vec<Sample>,
    started: std::time::Instant,
}

impl Metrics {
    /// Starts the metrics of a run of `command` under `policy` (the policy's name, or `-`).
    pub fn new(command: &'static str, policy: &str) -> Metrics {
        Metrics {
            command,
            policy: policy.to_string(),
            samples: Vec::new(),
            started: std::time::Instant::now(),
        }
    }

    /// Sets the policy label, once the policy is known.
    pub fn set_policy(&mut self, policy: &str) {
        self.policy = policy.to_string();
    }

    /// Adds a sample of a family from [`FAMILIES`], with extra labels.
    pub fn set(&mut self, name: &'static str, extra: &[(&'static str, &str)], value: f64) {
        debug_assert!(
            FAMILIES.iter().any(|(n, _)| *n == name),
            "{name} is not declared"
        );
        let mut labels = vec![
            ("command", self.command.to_string()),
            ("policy", self.policy.clone()),
        ];
        labels.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        self.samples.push(Sample {
            name,
            labels,
            value,
        });
    }

    /// A timestamp sample.
    pub fn time(
        &mut self,
        name: &'static str,
        extra: &[(&'static str, &str)],
        t: chrono::DateTime<chrono::Utc>,
    ) {
        self.set(name, extra, t.timestamp_millis() as f64 / 1000.0);
    }

    /// A 0/1 sample.
    pub fn flag(&mut self, name: &'static str, extra: &[(&'static str, &str)], on: bool) {
        self.set(name, extra, if on { 1.0 } else { 0.0 });
    }

    /// Runs a job command with its metrics: `body` adds samples, and the run's own samples and
    /// the textfile or push that `args` ask for follow on every exit, an early failure too (a
    /// stale file must not say all is well).
    pub async fn around(
        command: &'static str,
        args: &MetricsArgs,
        body: impl AsyncFnOnce(&mut Metrics) -> Result<u8>,
    ) -> Result<u8> {
        let mut m = Metrics::new(command, "-");
        let res = body(&mut m).await;
        m.finish(
            args,
            res.as_ref().map_or_else(crate::report::exit::of, |c| *c),
        )
        .await;
        res
    }

    /// Adds the run's own samples (time, duration, exit, success) and writes the textfile and
    /// the push that `args` ask for. A failure to write metrics is reported on stderr and does
    /// not change the command's exit status: the job's outcome is what it is.
    pub async fn finish(mut self, args: &MetricsArgs, code: u8) {
        if args.metrics_file.is_none() && args.pushgateway.is_none() {
            return;
        }
        let now = chrono::Utc::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        self.time("offsite_last_run_timestamp_seconds", &[], now);
        self.set("offsite_run_duration_seconds", &[], elapsed);
        self.set("offsite_run_exit_code", &[], f64::from(code));
        self.flag("offsite_run_success", &[], code == 0);
        let previous_success = if code == 0 {
            Some(now.timestamp_millis() as f64 / 1000.0)
        } else {
            args.metrics_file
                .as_deref()
                .and_then(|f| previous_value(f, "offsite_last_success_timestamp_seconds"))
        };
        if let Some(v) = previous_success {
            self.set("offsite_last_success_timestamp_seconds", &[], v);
        }
        let text = self.render();
        if let Some(f) = &args.metrics_file {
            if let Err(e) = write_atomically(f, &text) {
                eprintln!("warning: metrics not written: {e:#}");
            }
        }
        if let Some(url) = &args.pushgateway {
            if let Err(e) = push(url, self.command, &self.policy, text, code == 0).await {
                eprintln!("warning: metrics not pushed to {url}: {e:#}");
            }
        }
    }

    /// The text exposition format, families in [`FAMILIES`] order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help) in FAMILIES {
            let samples: Vec<&Sample> = self.samples.iter().filter(|s| s.name == *name).collect();
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for s in samples {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), number(s.value));
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value as the exposition format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The value of `name` in an earlier textfile, if it has one.
fn previous_value(path: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Writes `text` to a temporary file in `path`'s directory and renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".offsite-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // Readable by the collector (tempfile creates files 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot rename the metrics into {}", path.display()))?;
    Ok(())
}

/// Pushes to a Pushgateway. A successful run PUTs, replacing the whole group, so no family of an
/// earlier run lingers; a failed run POSTs, which replaces only the families pushed, so the
/// group keeps `offsite_last_success_timestamp_seconds` as the last success set it (its other
/// families may be an earlier run's, and `offsite_run_success 0` says so).
async fn push(url: &str, command: &str, policy: &str, text: String, replace: bool) -> Result<()> {
    let seg = |v: &str| -> String {
        url::form_urlencoded::byte_serialize(v.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let target = format!(
        "{}/metrics/job/offsite/command/{}/policy/{}",
        url.trim_end_matches('/'),
        seg(command),
        seg(policy)
    );
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let req = if replace {
        client.put(&target)
    } else {
        client.post(&target)
    };
    let res = req
        .header("content-type", "text/plain; version=0.0.4")
        .body(text)
        .send()
        .await
        .with_context(|| format!("cannot reach the Pushgateway at {url}"))?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        anyhow::bail!("the Pushgateway answered {status}: {}", body.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_declared_families_with_escaped_labels() {
        let mut m = Metrics::new("status", "app");
        m.set(
            "offsite_archives_complete",
            &[("destination", "dr \"west\"")],
            3.0,
        );
        m.flag("offsite_placement_met", &[], true);
        let text = m.render();
        assert!(text.contains("# TYPE offsite_placement_met gauge\noffsite_placement_met{command=\"status\",policy=\"app\"} 1\n"), "{text}");
        assert!(text.contains("offsite_archives_complete{command=\"status\",policy=\"app\",destination=\"dr \\\"west\\\"\"} 3"), "{text}");
        let names: Vec<&str> = FAMILIES.iter().map(|f| f.0).collect();
        let mut sorted = names.clone();
        sorted.dedup();
        assert_eq!(names.len(), sorted.len());
    }

    #[test]
    fn a_failed_run_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("offsite.prom");
        std::fs::write(
            &f,
            "offsite_last_success_timestamp_seconds{command=\"push\",policy=\"app\"} 1764122400\n",
        )
        .unwrap();
        assert_eq!(
            previous_value(&f, "offsite_last_success_timestamp_seconds"),
            Some(1_764_122_400.0)
        );
        assert_eq!(previous_value(&f, "offsite_last"), None);
    }
}
