//! Policy durations: `26h`, `7d`, `2w`, `1y2m3d4h` (m = months), as restic's `--keep-within`
//! writes them. Calendar units stay calendar units: `1m` back from March 31 is February 28.

use std::fmt;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Deserializer};

/// A span of years, months, weeks, days and hours.
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
}

/// Why a text is not a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: write a number and a unit, y (years), m (months), w (weeks), d (days) or h (hours), such as 26h, 7d, 2w or 1y2m3d4h")]
pub struct SpanError {
    text: String,
}

impl Span {
    /// Parses `1y2m3d4h`-style text; each unit at most once, in that order (weeks before days).
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let err = || SpanError {
            text: text.to_string(),
        };
        let mut span = Span::default();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err());
        }
        let order = ['y', 'm', 'w', 'd', 'h'];
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u32 = rest[..digits].parse().map_err(|_| err())?;
            let unit = rest[digits..].chars().next().ok_or_else(err)?;
            let at = order[next_unit..]
                .iter()
                .position(|u| *u == unit)
                .ok_or_else(err)?;
            next_unit += at + 1;
            match unit {
                'y' => span.years = n,
                'm' => span.months = n,
                'w' => span.weeks = n,
                'd' => span.days = n,
                _ => span.hours = n,
            }
            rest = &rest[digits + 1..];
        }
        Ok(span)
    }

    /// The time this span before `t` (calendar months and years; a day is 24 hours).
    pub fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years.saturating_mul(12).saturating_add(self.months);
        let t = t
            .checked_sub_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let hours =
            i64::from(self.weeks) * 7 * 24 + i64::from(self.days) * 24 + i64::from(self.hours);
        t.checked_sub_signed(chrono::Duration::hours(hours))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The time this span after `t`.
    pub fn after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years.saturating_mul(12).saturating_add(self.months);
        let t = t
            .checked_add_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let hours =
            i64::from(self.weeks) * 7 * 24 + i64::from(self.days) * 24 + i64::from(self.hours);
        t.checked_add_signed(chrono::Duration::hours(hours))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
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

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
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
        let s = Span::parse("1y2m3d4h").unwrap();
        assert_eq!((s.years, s.months, s.days, s.hours), (1, 2, 3, 4));
        assert_eq!(Span::parse("2w").unwrap().weeks, 2);
        assert_eq!(Span::parse("1y2m3d4h").unwrap().to_string(), "1y2m3d4h");
        for bad in ["", "7", "d", "7x", "1d1y", "1d2d", "-1d", "1.5d", "7 d"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calendar_months_and_days() {
        let m = Span::parse("1m").unwrap();
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
