//! The one retry wrapper: exponential backoff with full jitter, driven by
//! [`Error::is_retryable`](crate::Error::is_retryable).
//!
//! Each retry is told twice: to the one reporter the program installed with [`on_retry`] (the
//! CLI prints `retrying s3://bucket/key (2 of 6): connection refused` on stderr), and as a
//! `debug` tracing event with the whole error, for `-vv`.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng;

use crate::error::{Error, Operation, Result};

/// How often and how patiently to retry, and where (for the retry lines).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The delay cap before the first retry; doubled after each failure.
    pub base_delay: Duration,
    /// The largest delay between two attempts.
    pub max_delay: Duration,
    /// The store the requests go to, as a URL without its query (`s3://bucket/prefix`), that
    /// a retry line names with the error's key; see [`RetryPolicy::at`].
    place: Option<Arc<str>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            place: None,
        }
    }
}

/// One retry about to happen, as the reporter installed with [`on_retry`] is given it.
/// `Display` is the line a user reads: `retrying s3://bucket/app/x.age (2 of 6): connection
/// refused`.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// The store's URL without its query, when the policy knows it ([`RetryPolicy::at`]).
    pub place: Option<&'a str>,
    /// The attempt about to be made (2 for the first retry).
    pub attempt: u32,
    /// Attempts in all.
    pub of: u32,
    /// The error the last attempt ended in.
    pub error: &'a Error,
}

impl Retrying<'_> {
    /// Where, in one word: the store and the error's key (`s3://bucket/prefix/key`) for a
    /// request about one object; the store alone for a listing or a bucket request, whose
    /// key is a prefix; without a store, the provider, operation and key.
    pub fn target(&self) -> String {
        let e = self.error;
        let on_object = matches!(
            e.operation(),
            Operation::Head
                | Operation::Get
                | Operation::Put
                | Operation::Delete
                | Operation::Copy
                | Operation::Retention
        );
        match (self.place, e.key().filter(|k| on_object && !k.is_empty())) {
            (Some(p), Some(k)) => format!("{}/{k}", p.trim_end_matches('/')),
            (Some(p), None) => p.to_string(),
            (None, Some(k)) => format!("{} {} {k}", e.provider(), e.operation()),
            (None, None) => format!("{} {}", e.provider(), e.operation()),
        }
    }

    /// Why, in a few words: the network's own word where a socket failed (`connection
    /// refused`, `connection reset`, `timed out`), else the provider's error code
    /// (`SlowDown`, `ServerBusy`), else the kind of failure.
    pub fn reason(&self) -> String {
        use std::io::ErrorKind as Io;
        let mut cause = self
            .error
            .cause()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            cause = c.source();
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                // An `io::Error` made from another error hides it from `source()`.
                if let Some(inner) = io.get_ref() {
                    cause = Some(inner as &(dyn std::error::Error + 'static));
                }
                if matches!(
                    io.kind(),
                    Io::ConnectionRefused
                        | Io::ConnectionReset
                        | Io::ConnectionAborted
                        | Io::TimedOut
                        | Io::BrokenPipe
                        | Io::UnexpectedEof
                        | Io::NotConnected
                        | Io::AddrNotAvailable
                        | Io::HostUnreachable
                        | Io::NetworkUnreachable
                ) {
                    return io.kind().to_string();
                }
            }
        }
        if let Some(code) = self.error.code() {
            return code.to_string();
        }
        match self.error.kind() {
            crate::ErrorKind::RateLimited => "the server asked to slow down".into(),
            crate::ErrorKind::Corrupt => "the server received other bytes than were sent".into(),
            crate::ErrorKind::Transient => "a network or server failure".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Retrying<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retrying {} ({} of {}): {}",
            self.target(),
            self.attempt,
            self.of,
            self.reason()
        )
    }
}

/// The program's reporter of retries.
static REPORTER: OnceLock<fn(&Retrying<'_>)> = OnceLock::new();

/// Installs the one reporter every retry is given to, before it waits; the first call wins.
/// Without one, retries are only `debug` tracing events.
pub fn on_retry(report: fn(&Retrying<'_>)) {
    let _ = REPORTER.set(report);
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The same, naming the store its requests go to in retry lines: a URL, of which the
    /// query (`?region=...`, `?endpoint=...`) is left out.
    pub fn at(mut self, url: &str) -> Self {
        let base = url.split('?').next().unwrap_or(url).trim_end_matches('/');
        self.place = Some(Arc::from(base));
        self
    }

    /// The delay before retry number `attempt` (1-based): a uniform random value in
    /// `[0, min(max_delay, base_delay * 2^(attempt-1))]` ("full jitter"), so many clients that
    /// failed together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }

    /// Runs `op` until it succeeds, fails with an error that is not retryable, or the attempts
    /// run out; the last error is returned. Each retry goes to the [`on_retry`] reporter.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.max_attempts => {
                    let delay = self.delay(attempt);
                    let retrying = Retrying {
                        place: self.place.as_deref(),
                        attempt: attempt + 1,
                        of: self.max_attempts,
                        error: &e,
                    };
                    if let Some(report) = REPORTER.get() {
                        report(&retrying);
                    }
                    tracing::debug!(error = %e, attempt, ?delay, "{retrying}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind, Operation};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn a_retry_line_names_the_object_the_attempt_and_why() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::new(
            ErrorKind::Transient,
            "s3",
            Operation::Get,
            "s3://bkt: dispatch failure: io error: tcp connect error",
        )
        .with_key("x.age")
        .with_source(std::io::Error::other(refused));
        let policy = RetryPolicy::default().at("s3://bkt/app?region=us-east-1&endpoint=http://h:9");
        let r = Retrying {
            place: policy.place.as_deref(),
            attempt: 2,
            of: 6,
            error: &e,
        };
        assert_eq!(
            r.to_string(),
            "retrying s3://bkt/app/x.age (2 of 6): connection refused"
        );
        // A listing names the store; a code says why where no socket failed.
        let e = Error::new(ErrorKind::RateLimited, "s3", Operation::List, "slow down")
            .with_key("app/")
            .with_code("SlowDown");
        let r = Retrying {
            place: Some("s3://bkt/app"),
            attempt: 6,
            of: 6,
            error: &e,
        };
        assert_eq!(r.to_string(), "retrying s3://bkt/app (6 of 6): SlowDown");
        let r = Retrying {
            place: None,
            attempt: 3,
            of: 6,
            error: &e,
        };
        assert_eq!(r.to_string(), "retrying s3 list (3 of 6): SlowDown");
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let out = fast()
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::new(
                        ErrorKind::Transient,
                        "test",
                        Operation::Put,
                        "reset",
                    ))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let err = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(
                    ErrorKind::PermissionDenied,
                    "test",
                    Operation::Put,
                    "no",
                ))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let err = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(
                    ErrorKind::RateLimited,
                    "test",
                    Operation::Get,
                    "slow down",
                ))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn delay_is_capped() {
        let p = RetryPolicy {
            max_attempts: 50,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for attempt in 1..50 {
            assert!(p.delay(attempt) <= Duration::from_secs(1));
        }
    }
}
