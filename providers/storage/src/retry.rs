//! The one retry wrapper: exponential backoff with full jitter, driven by
//! [`Error::is_retryable`](crate::Error::is_retryable).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::Result;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The delay cap before the first retry; doubled after each failure.
    pub base_delay: Duration,
    /// The largest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
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
    /// run out; the last error is returned.
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
                    tracing::warn!(error = %e, attempt, ?delay, "retrying");
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
        }
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
        };
        for attempt in 1..50 {
            assert!(p.delay(attempt) <= Duration::from_secs(1));
        }
    }
}
