//! What a reader believes about a copy beside its bytes: who signed its manifest
//! ([`Signers`]) and whether its creation time is honest ([`Clock`],
//! `offsite_policies::clock::future_dated`). The engine takes its clock as an input: the CLI
//! passes the system clock, a test a simulated one.

use chrono::{DateTime, Utc};
use offsite_policies::duration::Span;

use super::Signers;

/// The time a reader judges at, and how far ahead of it (or of the store's and the push's
/// clocks) a creation time may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Now, as the reader's clock says.
    pub now: DateTime<Utc>,
    /// The policy's `clock-tolerance`, else the default.
    pub tolerance: Span,
}

impl Clock {
    /// The clock at `now` with the default tolerance.
    pub fn at(now: DateTime<Utc>) -> Clock {
        Clock {
            now,
            tolerance: offsite_policies::clock::DEFAULT_TOLERANCE,
        }
    }
}

/// Whose signatures count and what time it is: everything an entry is judged by.
#[derive(Debug, Clone)]
pub struct Judge {
    /// The trusted keys (none: every archive counts as trusted).
    pub signers: Signers,
    /// The reader's clock.
    pub clock: Clock,
}

impl Judge {
    /// A judge trusting `signers` at `clock`.
    pub fn new(signers: Signers, clock: Clock) -> Judge {
        Judge { signers, clock }
    }
}
