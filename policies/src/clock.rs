//! Honest time: an archive's creation time (from its name, `--name`, or the file) is believed
//! only where three clocks allow it. A name dated ahead, by a wrong clock or by someone who can
//! write to the bucket, must never make an archive the newest, push real ones out of retention,
//! or hide a missed rpo.
//!
//! [`future_dated`] is the one rule: an archive is future-dated when its creation time is
//! later, by more than the tolerance, than the reader's clock, or than the time the store says
//! its manifest was written (the server's clock, not the writer's), or than the push time its
//! manifest records. A copy written by a mildly fast clock becomes normal once the reader's
//! clock catches up, as long as the store's write time allows it; junk written today under next
//! week's date stays future-dated for good, because the store's write time never moves.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::duration::Span;

/// The tolerance when the policy names none, and for URLs: one hour.
pub const DEFAULT_TOLERANCE: Span = Span {
    years: 0,
    months: 0,
    weeks: 0,
    days: 0,
    hours: 1,
    minutes: 0,
};

/// Which clock an archive's creation time runs ahead of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    /// The reader's clock now.
    Reader,
    /// The time the store wrote the manifest.
    Store,
    /// The push time the manifest records.
    Push,
}

/// Why an archive is future-dated. Its `Display` is a clause for a user:
/// `created 2099-01-01T00:00:00Z, more than 1h after the store wrote its manifest (...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutureDated {
    /// The creation time claimed.
    pub created: DateTime<Utc>,
    /// The clock it runs ahead of.
    pub ahead_of: Ahead,
    /// That clock's time.
    pub clock: DateTime<Utc>,
    /// The tolerance.
    pub tolerance: Span,
}

impl fmt::Display for FutureDated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |d: &DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let which = match self.ahead_of {
            Ahead::Reader => "this host's clock",
            Ahead::Store => "the time the store wrote its manifest",
            Ahead::Push => "the push time its manifest records",
        };
        write!(
            f,
            "created {}, more than {} (clock-tolerance) after {which} ({})",
            t(&self.created),
            self.tolerance,
            t(&self.clock)
        )
    }
}

/// Whether an archive created at `created` is future-dated, read at `now`, its manifest
/// written by the store at `written` (`None`: the store reports no time) and pushed at
/// `pushed` (`None`: the manifest records none). Exactly at the tolerance is not ahead; a
/// second past it is. The reader's clock is checked first, then the store's, then the push
/// time's.
pub fn future_dated(
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    written: Option<DateTime<Utc>>,
    pushed: Option<DateTime<Utc>>,
    tolerance: Span,
) -> Option<FutureDated> {
    [
        (Ahead::Reader, Some(now)),
        (Ahead::Store, written),
        (Ahead::Push, pushed),
    ]
    .into_iter()
    .find_map(|(ahead_of, clock)| {
        let clock = clock?;
        (created > tolerance.after(clock)).then_some(FutureDated {
            created,
            ahead_of,
            clock,
            tolerance,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    const HOUR: Span = DEFAULT_TOLERANCE;

    #[test]
    fn exactly_at_the_tolerance_is_not_ahead_a_second_past_it_is() {
        let now = t0();
        let at = now + Duration::hours(1);
        assert_eq!(future_dated(at, now, Some(now), Some(now), HOUR), None);
        let past = at + Duration::seconds(1);
        let f = future_dated(past, now, Some(now), Some(now), HOUR).unwrap();
        assert_eq!(f.ahead_of, Ahead::Reader);
        assert_eq!(
            f.to_string(),
            "created 2026-12-07T13:00:01Z, more than 1h (clock-tolerance) after this host's clock (2026-12-07T12:00:00Z)"
        );
    }

    #[test]
    fn the_store_write_time_keeps_junk_future_dated_for_good() {
        // Written today under next week's date: a week on, the reader's clock allows it, the
        // store's write time never will.
        let written = t0();
        let created = written + Duration::days(7);
        let later = written + Duration::days(30);
        let f = future_dated(created, later, Some(written), Some(created), HOUR).unwrap();
        assert_eq!(f.ahead_of, Ahead::Store);
        // A mildly fast writer (30 minutes ahead) is normal at once.
        let mild = written + Duration::minutes(30);
        assert_eq!(
            future_dated(mild, written, Some(written), Some(mild), HOUR),
            None
        );
        // Two hours fast: future-dated while the reader's clock is behind, and for good by the
        // store's clock.
        let fast = written + Duration::hours(2);
        assert!(future_dated(fast, later, Some(written), Some(fast), HOUR).is_some());
    }

    #[test]
    fn a_push_time_it_runs_ahead_of_counts_and_missing_clocks_are_skipped() {
        let now = t0();
        let created = now - Duration::days(1);
        let pushed = created - Duration::days(2);
        let f = future_dated(created, now, None, Some(pushed), HOUR).unwrap();
        assert_eq!(f.ahead_of, Ahead::Push);
        // No push time and no store time: only the reader's clock judges.
        assert_eq!(future_dated(created, now, None, None, HOUR), None);
        let ahead = now + Duration::hours(2);
        assert_eq!(
            future_dated(ahead, now, None, None, HOUR).map(|f| f.ahead_of),
            Some(Ahead::Reader)
        );
    }

    #[test]
    fn a_zero_tolerance_allows_nothing_ahead() {
        let now = t0();
        let zero = Span::default();
        assert_eq!(future_dated(now, now, Some(now), Some(now), zero), None);
        assert!(future_dated(now + Duration::seconds(1), now, None, None, zero).is_some());
    }
}
