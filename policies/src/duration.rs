//! Policy durations: `26h`, `7d`, `2w`, `30min`, `1y2mo3d4h`. Calendar units stay calendar
//! units: `1mo` back from March 31 is February 28.
//!
//! A bare `m` is where restic and a reader part ways: restic's `--keep-within 6m` is six
//! months, and `rpo = "30m"` reads as thirty minutes. The retention keys (`keep-within*`,
//! `max-age`) keep restic's meaning ([`Span::parse_restic`]); every other key
//! ([`Span::parse`], and serde's default for a [`Span`]) refuses a bare `m` with both readings.
//! `mo` (months) and `min` (minutes) are accepted everywhere.

use std::fmt;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Deserializer};

/// A span of years, months, weeks, days, hours and minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
    /// Minutes.
    pub minutes: u32,
}

/// Why a text is not a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// Not a duration at all.
    #[error("`{text}` is not a duration: write a number and a unit, y (years), mo (months), w (weeks), d (days), h (hours) or min (minutes), such as 26h, 7d, 2w, 30min or 1y2mo3d4h")]
    NotADuration {
        /// The text given.
        text: String,
    },
    /// A bare `m` where minutes are as plausible as months.
    #[error("`{text}`: {n}m could be {n} minutes or {n} months; write {n}min or {n}mo")]
    Ambiguous {
        /// The text given.
        text: String,
        /// The number before the `m`.
        n: u32,
    },
}

/// What a bare `m` means while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareM {
    /// Months, as restic's retention flags read it.
    Months,
    /// Refused: minutes and months are both plausible.
    Refused,
}

impl Span {
    /// Parses `1y2mo3d4h30min`-style text, refusing a bare `m` (minutes or months?). Each
    /// unit at most once, largest first.
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        Self::parse_with(text, BareM::Refused)
    }

    /// Parses as [`Span::parse`] does, with a bare `m` meaning months, as restic's
    /// `--keep-within` and the retention keys read it.
    pub fn parse_restic(text: &str) -> Result<Span, SpanError> {
        Self::parse_with(text, BareM::Months)
    }

    fn parse_with(text: &str, bare_m: BareM) -> Result<Span, SpanError> {
        let err = || SpanError::NotADuration {
            text: text.to_string(),
        };
        let mut span = Span::default();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err());
        }
        // Units, largest first; the index is the unit's place in that order.
        let order = ["y", "mo", "w", "d", "h", "min"];
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u32 = rest[..digits].parse().map_err(|_| err())?;
            let letters = rest[digits..]
                .bytes()
                .take_while(u8::is_ascii_alphabetic)
                .count();
            let unit = match &rest[digits..digits + letters] {
                "m" if bare_m == BareM::Refused => {
                    return Err(SpanError::Ambiguous {
                        text: text.to_string(),
                        n,
                    })
                }
                "m" => "mo",
                u => u,
            };
            let at = order.iter().position(|u| *u == unit).ok_or_else(err)?;
            if at < next_unit {
                return Err(err());
            }
            next_unit = at + 1;
            match unit {
                "y" => span.years = n,
                "mo" => span.months = n,
                "w" => span.weeks = n,
                "d" => span.days = n,
                "h" => span.hours = n,
                _ => span.minutes = n,
            }
            rest = &rest[digits + letters..];
        }
        Ok(span)
    }

    /// Whether the span is no time at all (`0h`, `0d`).
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// The span in words: `30 minutes`, `1 year 2 months 3 days`, `no time`.
    pub fn words(&self) -> String {
        let parts = [
            (self.years, "year"),
            (self.months, "month"),
            (self.weeks, "week"),
            (self.days, "day"),
            (self.hours, "hour"),
            (self.minutes, "minute"),
        ];
        let w: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, u)| format!("{n} {u}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        if w.is_empty() {
            "no time".into()
        } else {
            w.join(" ")
        }
    }

    /// The span's minutes and hours, weeks and days as one duration (months and years are
    /// calendar units, applied apart).
    fn clock_part(&self) -> chrono::Duration {
        chrono::Duration::minutes(
            ((i64::from(self.weeks) * 7 + i64::from(self.days)) * 24 + i64::from(self.hours)) * 60
                + i64::from(self.minutes),
        )
    }

    /// The time this span before `t` (calendar months and years; a day is 24 hours).
    pub fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years.saturating_mul(12).saturating_add(self.months);
        let t = t
            .checked_sub_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        t.checked_sub_signed(self.clock_part())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The time this span after `t`.
    pub fn after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years.saturating_mul(12).saturating_add(self.months);
        let t = t
            .checked_add_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        t.checked_add_signed(self.clock_part())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, "y"),
            (self.months, "mo"),
            (self.weeks, "w"),
            (self.days, "d"),
            (self.hours, "h"),
            (self.minutes, "min"),
        ];
        let mut any = false;
        for (n, u) in parts {
            if n > 0 {
                write!(f, "{n}{u}")?;
                any = true;
            }
        }
        if !any {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

/// A policy key's duration as [`Span::parse`] reads it: a bare `m` is refused. Any duration
/// key is read so unless it says otherwise.
impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A retention key's duration (`keep-within*`, `max-age`), as restic reads it: `6m` is six
/// months. For `#[serde(default, deserialize_with = "...")]` on an `Option<Span>`.
pub fn restic<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
    let text = String::deserialize(d)?;
    Span::parse_restic(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_forms_policies_use() {
        assert_eq!(
            Span::parse("26h").unwrap(),
            Span {
                hours: 26,
                ..Span::default()
            }
        );
        let s = Span::parse_restic("1y2m3d4h").unwrap();
        assert_eq!((s.years, s.months, s.days, s.hours), (1, 2, 3, 4));
        assert_eq!(Span::parse("1y2mo3d4h").unwrap(), s);
        assert_eq!(Span::parse("2w").unwrap().weeks, 2);
        assert_eq!(Span::parse("1y2mo3d4h").unwrap().to_string(), "1y2mo3d4h");
        for bad in [
            "", "7", "d", "7x", "1d1y", "1d2d", "-1d", "1.5d", "7 d", "1min1h", "3mins",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
            assert!(Span::parse_restic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bare_m_is_months_for_retention_and_refused_elsewhere() {
        assert_eq!(Span::parse_restic("30m").unwrap().months, 30);
        assert_eq!(Span::parse("30mo").unwrap().months, 30);
        assert_eq!(Span::parse_restic("30min").unwrap().minutes, 30);
        let e = Span::parse("30m").unwrap_err().to_string();
        assert_eq!(
            e,
            "`30m`: 30m could be 30 minutes or 30 months; write 30min or 30mo"
        );
        assert!(Span::parse("1h30m").is_err());
        let s = Span::parse("1h30min").unwrap();
        assert_eq!(s.to_string(), "1h30min");
        assert_eq!(s.words(), "1 hour 30 minutes");
        assert_eq!(Span::parse("0h").unwrap().words(), "no time");
        assert_eq!(
            s.after(t("2026-11-26T02:00:00Z")),
            t("2026-11-26T03:30:00Z")
        );
    }

    #[test]
    fn calendar_months_and_days() {
        let m = Span::parse_restic("1m").unwrap();
        assert_eq!(
            m.before(t("2026-03-31T00:00:00Z")),
            t("2026-02-28T00:00:00Z")
        );
        let d = Span::parse("7d").unwrap();
        assert_eq!(
            d.after(t("2026-11-26T02:00:00Z")),
            t("2026-12-03T02:00:00Z")
        );
        assert_eq!(
            d.before(d.after(t("2026-11-26T02:00:00Z"))),
            t("2026-11-26T02:00:00Z")
        );
    }
}
