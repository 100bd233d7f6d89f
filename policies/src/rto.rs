//! Recovery time: how long a restore from each destination would take, and whether a series'
//! `rto` holds. Pure: the binary reads what drills measured (the `restore` of the verification
//! records) into the inventory, and `status` and `plan` print what these functions return.
//!
//! - A destination's **estimate** for an archive is its storage class's documented thaw time
//!   ([`thaw`]) plus the archive's stored size at the throughput its newest drill measured
//!   there ([`Measured::scaled`]). Without a measurement there is no estimate.
//! - A destination **can never** meet an `rto` when its thaw time alone is as long
//!   ([`Reach::Never`]): that needs no drill to know, and `plan` says it.
//! - A series' `rto` is **met** when at least one destination holding a complete trusted copy
//!   of its newest archive can restore it within `rto` ([`series_met`]); **not met** when every
//!   one of them is estimated over it or can never make it; **not judged** otherwise (a holder
//!   that no drill has measured yet could still be the one).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::duration::Span;
use crate::inventory::Kind;

/// An archive storage class's documented thaw time, at the priority `offsite restore --thaw`
/// asks for (S3 Standard retrieval, Azure Standard rehydration priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thaw {
    /// The provider and class, as a user reads them: `S3 GLACIER`.
    pub class: &'static str,
    /// Up to how many hours the provider documents for it.
    pub hours: u32,
}

impl Thaw {
    /// The thaw time as a duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.hours) * 3600)
    }
}

impl fmt::Display for Thaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} needs up to {} hours to thaw", self.class, self.hours)
    }
}

/// The thaw time of a storage class (Azure: access tier) of a kind of store, or `None` for a
/// class read directly (every other one, every GCS class, local disk).
///
/// The hours are the providers' documented upper bounds at the priority `restore --thaw`
/// requests:
/// - S3 GLACIER (Glacier Flexible Retrieval), Standard retrieval: "typically finish within 3–5
///   hours" (Amazon S3 User Guide, "Understanding archive retrieval options"); 5 hours.
/// - S3 DEEP_ARCHIVE, Standard retrieval: "typically finish within 12 hours" (same page; Bulk
///   takes up to 48 hours, and offsite does not ask for it); 12 hours.
/// - Azure Archive tier, Standard rehydration priority: "might take up to 15 hours" (Azure
///   Storage docs, "Rehydrate an archived blob to an online tier"); 15 hours.
/// - S3 GLACIER_IR and the GCS ARCHIVE class are read directly, in milliseconds: no thaw.
pub fn thaw(kind: Kind, class: Option<&str>) -> Option<Thaw> {
    match (kind, class?) {
        (Kind::S3, "GLACIER") => Some(Thaw {
            class: "S3 GLACIER",
            hours: 5,
        }),
        (Kind::S3, "DEEP_ARCHIVE") => Some(Thaw {
            class: "S3 DEEP_ARCHIVE",
            hours: 12,
        }),
        (Kind::Azure, "Archive") => Some(Thaw {
            class: "Azure Archive",
            hours: 15,
        }),
        _ => None,
    }
}

/// A restore a drill measured at a destination: how many stored bytes it read back and how
/// long that took (download, decryption and both hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// When the drill ran.
    pub at: DateTime<Utc>,
    /// The stored bytes restored.
    pub bytes: u64,
    /// How long it took.
    pub took: Duration,
}

impl Measured {
    /// The bytes per second it reached, `None` for a restore too quick to time.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let s = self.took.as_secs_f64();
        (s > 0.0).then(|| self.bytes as f64 / s)
    }

    /// How long restoring `size` stored bytes takes at this throughput: the measured time
    /// scaled by the sizes. An empty measured archive (nothing to scale by) gives its own time.
    pub fn scaled(&self, size: u64) -> Duration {
        if self.bytes == 0 {
            return self.took;
        }
        self.took.mul_f64(size as f64 / self.bytes as f64)
    }
}

/// `{"at": ..., "seconds": 12.3, "bytes": N, "bytes_per_second": X}`.
impl Serialize for Measured {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out {
            at: DateTime<Utc>,
            seconds: f64,
            bytes: u64,
            bytes_per_second: Option<f64>,
        }
        Out {
            at: self.at,
            seconds: self.took.as_secs_f64(),
            bytes: self.bytes,
            bytes_per_second: self.bytes_per_second(),
        }
        .serialize(s)
    }
}

/// How one destination stands against an `rto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Its estimate is within the rto.
    Within,
    /// Its estimate is over the rto.
    Over,
    /// Its thaw time alone is the rto or more: no throughput makes up for it.
    Never,
    /// No drill measured a restore there yet, and no thaw rules it out.
    Unmeasured,
}

/// The restore time estimated for `size` stored bytes: the thaw (if any) and the size at the
/// measured throughput; `None` without a measurement.
pub fn estimate(size: u64, measured: Option<&Measured>, thaw: Option<Thaw>) -> Option<Duration> {
    let thawing = thaw.map(|t| t.duration()).unwrap_or_default();
    measured.map(|m| thawing + m.scaled(size))
}

/// Whether a destination whose class thaws by `thaw` can ever restore within `rto`.
pub fn never(thaw: Option<Thaw>, rto: Duration) -> bool {
    thaw.is_some_and(|t| t.duration() >= rto)
}

/// How a destination with this estimate and thaw stands against `rto`.
pub fn reach(estimate: Option<Duration>, thaw: Option<Thaw>, rto: Duration) -> Reach {
    if never(thaw, rto) {
        return Reach::Never;
    }
    match estimate {
        Some(e) if e <= rto => Reach::Within,
        Some(_) => Reach::Over,
        None => Reach::Unmeasured,
    }
}

/// A series' verdict from how each destination holding its newest archive stands: met when
/// one can restore within the rto; not met when each is over it or can never make it; `None`
/// (not judged) when none holds it, or when an unmeasured one could still be the one.
pub fn series_met(holders: &[Reach]) -> Option<bool> {
    if holders.contains(&Reach::Within) {
        Some(true)
    } else if holders.is_empty() || holders.contains(&Reach::Unmeasured) {
        None
    } else {
        Some(false)
    }
}

/// What `plan` says of a policy's rto before anything is stored: each destination's thaw
/// time, whether that alone rules the destination out, and the problem when it rules out
/// every destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtoPlan {
    /// Per destination, in the policy's order: its storage class's thaw time.
    pub thaws: Vec<Option<Thaw>>,
    /// Per destination: whether it can never restore within the rto (`false` without one).
    pub never: Vec<bool>,
    /// The rto cannot be met at all: every destination's thaw time alone is that long.
    pub problem: Option<String>,
}

/// Plans a policy's rto over its destinations (`slots`, in its order) at `now`.
pub fn plan(
    policy: &crate::policy::Policy,
    slots: &[crate::placement::Slot],
    now: DateTime<Utc>,
) -> RtoPlan {
    let thaws: Vec<Option<Thaw>> = policy
        .destinations
        .iter()
        .zip(slots)
        .map(|(d, s)| thaw(s.kind, d.storage_class.as_deref()))
        .collect();
    let rto = policy.rto.map(|r| span_duration(r, now));
    let ruled_out: Vec<bool> = thaws
        .iter()
        .map(|t| rto.is_some_and(|rto| never(*t, rto)))
        .collect();
    let problem = match policy.rto {
        Some(span) if !ruled_out.is_empty() && ruled_out.iter().all(|n| *n) => Some(format!(
            "rto {span}: no destination can ever restore within {}: {}; keep one destination in a class read directly (such as S3 STANDARD_IA or GLACIER_IR, Azure Cool or Cold, any GCS class), or raise rto",
            span.words(),
            slots
                .iter()
                .zip(&thaws)
                .filter_map(|(s, t)| t.map(|t| format!("{}: {t}", s.name)))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        _ => None,
    };
    RtoPlan {
        thaws,
        never: ruled_out,
        problem,
    }
}

/// A span as a duration, measured forward from `now` (months and years have calendar
/// lengths).
pub fn span_duration(span: Span, now: DateTime<Utc>) -> Duration {
    (span.after(now) - now).to_std().unwrap_or_default()
}

/// A duration for a person: `0.4s`, `12.3s`, `2m 5s`, `1h 4m`, `2d 3h`.
pub fn duration_words(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else {
        format!("{mins}m {secs}s")
    }
}

/// Serializes an optional duration as seconds (`12.3`).
pub fn as_seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(|d| d.as_secs_f64()).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-11-26T02:00:00Z".parse().unwrap()
    }

    fn measured(bytes: u64, secs: f64) -> Measured {
        Measured {
            at: at(),
            bytes,
            took: Duration::from_secs_f64(secs),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn archive_classes_thaw_for_their_documented_hours_and_the_rest_not_at_all() {
        assert_eq!(thaw(Kind::S3, Some("GLACIER")).unwrap().hours, 5);
        assert_eq!(thaw(Kind::S3, Some("DEEP_ARCHIVE")).unwrap().hours, 12);
        assert_eq!(thaw(Kind::Azure, Some("Archive")).unwrap().hours, 15);
        for (kind, class) in [
            (Kind::S3, Some("GLACIER_IR")),
            (Kind::S3, Some("STANDARD_IA")),
            (Kind::S3, None),
            (Kind::Gcs, Some("ARCHIVE")),
            (Kind::Azure, Some("Cold")),
            (Kind::File, None),
            // A class of another provider's name means nothing here.
            (Kind::Gcs, Some("GLACIER")),
        ] {
            assert_eq!(thaw(kind, class), None, "{kind:?} {class:?}");
        }
        assert_eq!(
            thaw(Kind::S3, Some("DEEP_ARCHIVE")).unwrap().to_string(),
            "S3 DEEP_ARCHIVE needs up to 12 hours to thaw"
        );
    }

    #[test]
    fn the_estimate_scales_the_measured_time_by_size_and_adds_the_thaw() {
        // 10 MiB measured in 2 s: 100 MiB takes 20 s.
        let m = measured(10 << 20, 2.0);
        assert_eq!(m.bytes_per_second(), Some(5.0 * 1024.0 * 1024.0));
        assert_eq!(
            estimate(100 << 20, Some(&m), None),
            Some(Duration::from_secs(20))
        );
        let glacier = thaw(Kind::S3, Some("GLACIER"));
        assert_eq!(
            estimate(100 << 20, Some(&m), glacier),
            Some(Duration::from_secs(5 * 3600 + 20))
        );
        assert_eq!(estimate(100 << 20, None, glacier), None);
        // An empty archive measured: its own time, whatever the size.
        assert_eq!(
            estimate(5, Some(&measured(0, 0.5)), None),
            Some(Duration::from_millis(500))
        );
        assert_eq!(measured(7, 0.0).bytes_per_second(), None);
    }

    #[test]
    fn each_destination_is_within_over_never_or_unmeasured() {
        let glacier = thaw(Kind::S3, Some("GLACIER"));
        let hour = 60 * MIN;
        assert_eq!(reach(Some(MIN), None, 30 * MIN), Reach::Within);
        assert_eq!(reach(Some(30 * MIN), None, 30 * MIN), Reach::Within);
        assert_eq!(reach(Some(31 * MIN), None, 30 * MIN), Reach::Over);
        assert_eq!(reach(None, None, 30 * MIN), Reach::Unmeasured);
        // A thaw as long as the rto leaves no time to download: never, measured or not.
        assert_eq!(reach(None, glacier, 5 * hour), Reach::Never);
        assert_eq!(reach(Some(6 * hour), glacier, 5 * hour), Reach::Never);
        assert!(never(glacier, 5 * hour));
        assert!(!never(glacier, 6 * hour));
        assert!(!never(None, MIN));
        // Within a generous rto, a thawing class is judged by its estimate.
        assert_eq!(reach(None, glacier, 8 * hour), Reach::Unmeasured);
        assert_eq!(
            reach(Some(5 * hour + MIN), glacier, 8 * hour),
            Reach::Within
        );
    }

    #[test]
    fn a_series_needs_one_holder_within_and_is_not_judged_while_one_could_be() {
        use Reach::*;
        assert_eq!(series_met(&[Over, Within, Never]), Some(true));
        assert_eq!(series_met(&[Over, Never]), Some(false));
        assert_eq!(series_met(&[Never]), Some(false));
        assert_eq!(series_met(&[Over, Unmeasured]), None);
        assert_eq!(series_met(&[Unmeasured, Within]), Some(true));
        assert_eq!(series_met(&[]), None);
    }

    #[test]
    fn plan_names_each_destination_that_can_never_meet_the_rto_and_fails_when_all_cannot() {
        let text = |rto: &str, local: bool| {
            format!(
                "version = 1\nname = \"app\"\nrto = \"{rto}\"\n[encryption]\nunencrypted = true\n{}\
                 [[destination]]\nname = \"cold\"\nurl = \"s3://b/app\"\nstorage-class = \"DEEP_ARCHIVE\"\n\
                 [[destination]]\nname = \"vault\"\nurl = \"az://acct/c/app\"\nstorage-class = \"Archive\"\n",
                if local { "[[destination]]\nname = \"local\"\nurl = \"file:///a\"\n" } else { "" }
            )
        };
        let plan_of = |rto: &str, local: bool| {
            let p = crate::policy::Policy::parse(&text(rto, local), "p.toml").unwrap();
            plan(&p, &crate::placement::slots(&p), at())
        };
        let p = plan_of("13h", true);
        assert_eq!(p.never, [false, false, true]);
        assert_eq!(p.thaws[1].unwrap().hours, 12);
        assert_eq!(p.problem, None);
        let p = plan_of("13h", false);
        assert_eq!(p.never, [false, true]);
        assert_eq!(p.problem, None);
        let p = plan_of("12h", false);
        assert_eq!(p.never, [true, true]);
        assert_eq!(
            p.problem.unwrap(),
            "rto 12h: no destination can ever restore within 12 hours: cold: S3 DEEP_ARCHIVE needs up to 12 hours to thaw; vault: Azure Archive needs up to 15 hours to thaw; keep one destination in a class read directly (such as S3 STANDARD_IA or GLACIER_IR, Azure Cool or Cold, any GCS class), or raise rto"
        );
    }

    #[test]
    fn durations_read_in_human_units() {
        assert_eq!(duration_words(Duration::from_millis(420)), "0.4s");
        assert_eq!(duration_words(Duration::from_secs_f64(12.34)), "12.3s");
        assert_eq!(duration_words(Duration::from_secs(125)), "2m 5s");
        assert_eq!(duration_words(Duration::from_secs(3840)), "1h 4m");
        assert_eq!(duration_words(Duration::from_secs(183_600)), "2d 3h");
        assert_eq!(span_duration(Span::parse("30min").unwrap(), at()), 30 * MIN);
    }
}
