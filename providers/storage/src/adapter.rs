//! What every cloud adapter (S3, GCS, Azure) does alike, written once: the engine's URL keys,
//! the storage-class check, create-only writes, deletes refused by a lock, the empty read, and
//! a download that breaks off.
//!
//! Each function builds the error the contract promises, so that the same situation reads the
//! same whichever provider it happens on.

use std::ops::Range;

use chrono::Utc;
use futures::stream::{self, StreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::storage::{GetResult, Storage};
use crate::types::ObjectMeta;

/// Location query keys that belong to the engine (per-destination placement options), not to
/// an adapter: every adapter accepts and ignores them when it reads its URL.
pub const ENGINE_KEYS: &[&str] = &[
    "storage-class",
    "lock",
    "lock-days",
    "legal-hold",
    "offsite",
];

/// Checks `PutOptions::storage_class` against the classes a provider accepts.
///
/// `given` is the class asked for (`None` passes), `allowed` the provider's names, and `what`
/// names the kind of value in the message ("an S3 storage class", "an Azure access tier"). A
/// class not in the list is `InvalidConfig` on `key`, with a hint that lists the allowed ones.
pub fn check_storage_class(
    provider: &'static str,
    key: &str,
    given: Option<&str>,
    allowed: &[&str],
    what: &str,
) -> Result<()> {
    match given {
        Some(c) if !allowed.contains(&c) => Err(Error::new(
            ErrorKind::InvalidConfig,
            provider,
            Operation::Put,
            format!("{c:?} is not {what}"),
        )
        .with_key(key)
        .with_hint(format!("use one of {}", allowed.join(", ")))),
        _ => Ok(()),
    }
}

/// The error of a write that may not replace an object: with `if_not_exists`, a failed
/// precondition (If-None-Match, ifGenerationMatch=0) or the provider's own "already exists"
/// becomes [`Error::already_exists`]; any other error, or any error of a write without
/// `if_not_exists`, is returned as it is.
pub fn create_only(err: Error, if_not_exists: bool, provider: &'static str, key: &str) -> Error {
    if if_not_exists
        && matches!(
            err.kind(),
            ErrorKind::PreconditionFailed | ErrorKind::AlreadyExists
        )
    {
        Error::already_exists(provider, key)
    } else {
        err
    }
}

/// The `Locked` error for an object whose `head` shows a legal hold or a retention lock that
/// has not expired, or `None` when it shows neither.
///
/// `location` names the bucket or container as a URL (`s3://bucket`); the message says which
/// hold or lock, and until when, and the hint why the delete cannot happen.
pub fn locked(
    meta: &ObjectMeta,
    provider: &'static str,
    location: &str,
    key: &str,
) -> Option<Error> {
    if meta.legal_hold {
        return Some(
            Error::new(
                ErrorKind::Locked,
                provider,
                Operation::Delete,
                format!("{location}: the object is under a legal hold"),
            )
            .with_key(key)
            .with_hint("it cannot be deleted until the hold is released"),
        );
    }
    let r = meta
        .retention
        .as_ref()
        .filter(|r| r.retain_until > Utc::now())?;
    Some(
        Error::new(
            ErrorKind::Locked,
            provider,
            Operation::Delete,
            format!(
                "{location}: the object is under a {:?} lock until {}",
                r.mode,
                r.retain_until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        )
        .with_key(key)
        .with_hint("it cannot be deleted before then; that is what the lock is for"),
    )
}

/// The error of a delete the provider refused, given what `head` showed just before: a
/// `PermissionDenied` on an object under a hold or lock is [`locked`] (providers answer a lock
/// refusal as a plain 403), anything else is returned as it is.
pub fn delete_refused(
    err: Error,
    meta: &ObjectMeta,
    provider: &'static str,
    location: &str,
    key: &str,
) -> Error {
    if err.kind() != ErrorKind::PermissionDenied {
        return err;
    }
    locked(meta, provider, location, key).unwrap_or(err)
}

/// The answer to a `get` whose range is empty, made without reading the object: its metadata
/// (from `head`), the range, and a stream that ends at once.
pub fn empty_get(meta: ObjectMeta, range: Range<u64>) -> GetResult {
    GetResult {
        meta,
        range,
        stream: stream::empty().boxed(),
    }
}

/// The error of a download stream that failed after it started: `Transient` (the read can be
/// tried again) on `key`, where `location` names the bucket or container as a URL.
///
/// `err_text` is the SDK's error as text. Some SDKs end it in the request URL, whose query can
/// carry a credential (an Azure SAS, a signed URL), so every URL query in it is dropped: from
/// `?` to the next whitespace.
pub fn download_broke_off(
    provider: &'static str,
    location: &str,
    key: &str,
    err_text: &str,
) -> Error {
    Error::new(
        ErrorKind::Transient,
        provider,
        Operation::Get,
        format!(
            "{location}: the download broke off: {}",
            strip_queries(err_text)
        ),
    )
    .with_key(key)
}

/// `text` with every `?...` run up to whitespace removed (URL queries, which may be secrets).
fn strip_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        if c == '?' {
            in_query = true;
        } else if c.is_whitespace() {
            in_query = false;
        }
        if !in_query {
            out.push(c);
        }
    }
    out
}

/// `source` as the adapter's own store type `T`, when it is one and `fits` holds (the same
/// service and credentials, options its copy can honour): the one test behind an adapter's
/// `Storage::can_copy_from` and `Storage::copy_from_store`.
pub fn own_kind<T: 'static>(source: &dyn Storage, fits: impl FnOnce(&T) -> bool) -> Option<&T> {
    source.as_any().downcast_ref::<T>().filter(|s| fits(s))
}

/// The error of a `copy_from_store` from a store [`own_kind`] turned down: `Unsupported`, so
/// the caller streams the copy instead.
pub fn no_copy_from(provider: &'static str, to: &str) -> Error {
    crate::unsupported(
        provider,
        Operation::Copy,
        "copy inside the provider from that store (another service, other credentials, or options its copy cannot honour)",
    )
    .with_key(to)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::types::{LockMode, Retention};

    #[test]
    fn a_broken_download_names_no_url_query() {
        let e = download_broke_off(
            "azure",
            "az://acct/c",
            "k",
            "error decoding response body for url (https://acct.blob.core.windows.net/c/k?sv=2020&sig=SECRET) after 3 s",
        );
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.is_retryable());
        assert_eq!(e.key(), Some("k"));
        assert_eq!(e.operation(), Operation::Get);
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(!shown.contains("sv=2020"), "{shown}");
        }
        assert!(
            e.message()
                .starts_with("az://acct/c: the download broke off: error decoding response body"),
            "{}",
            e.message()
        );
        assert!(
            e.message()
                .contains("https://acct.blob.core.windows.net/c/k after 3 s"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn a_broken_download_keeps_text_without_queries() {
        let e = download_broke_off("s3", "s3://bkt", "a/b", "connection reset by peer");
        assert_eq!(
            e.message(),
            "s3://bkt: the download broke off: connection reset by peer"
        );
    }

    #[test]
    fn storage_classes_outside_the_list_are_refused() {
        let allowed = &["STANDARD", "NEARLINE"];
        assert!(check_storage_class("gcs", "k", None, allowed, "a GCS storage class").is_ok());
        assert!(
            check_storage_class("gcs", "k", Some("NEARLINE"), allowed, "a GCS storage class")
                .is_ok()
        );
        let e = check_storage_class("gcs", "k", Some("COOL"), allowed, "a GCS storage class")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert_eq!(e.message(), "\"COOL\" is not a GCS storage class");
        assert_eq!(e.hint(), Some("use one of STANDARD, NEARLINE"));
        assert_eq!(e.key(), Some("k"));
    }

    #[test]
    fn create_only_turns_a_failed_precondition_into_already_exists() {
        let pre = || Error::new(ErrorKind::PreconditionFailed, "s3", Operation::Put, "412");
        let e = create_only(pre(), true, "s3", "k");
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.message(), Error::already_exists("s3", "k").message());
        assert_eq!(
            create_only(pre(), false, "s3", "k").kind(),
            ErrorKind::PreconditionFailed
        );
        let taken = Error::new(ErrorKind::AlreadyExists, "azure", Operation::Put, "taken");
        assert_eq!(
            create_only(taken, true, "azure", "k").to_string(),
            Error::already_exists("azure", "k").to_string()
        );
        let other = Error::new(ErrorKind::Transient, "s3", Operation::Put, "reset");
        assert_eq!(
            create_only(other, true, "s3", "k").kind(),
            ErrorKind::Transient
        );
    }

    #[test]
    fn refused_deletes_of_held_or_locked_objects_are_locked() {
        let denied = || Error::new(ErrorKind::PermissionDenied, "s3", Operation::Delete, "403");
        let mut held = ObjectMeta::new("k", 1);
        held.legal_hold = true;
        let e = delete_refused(denied(), &held, "s3", "s3://bkt", "k");
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert_eq!(e.message(), "s3://bkt: the object is under a legal hold");
        assert_eq!(
            e.hint(),
            Some("it cannot be deleted until the hold is released")
        );

        let mut locked_meta = ObjectMeta::new("k", 1);
        locked_meta.retention = Some(Retention {
            mode: LockMode::Compliance,
            retain_until: Utc::now() + Duration::days(1),
        });
        let e = delete_refused(denied(), &locked_meta, "gcs", "gs://bkt", "k");
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert!(
            e.message()
                .starts_with("gs://bkt: the object is under a Compliance lock until "),
            "{}",
            e.message()
        );

        // An expired lock, no lock, or another kind of error: the error as it was.
        let mut expired = ObjectMeta::new("k", 1);
        expired.retention = Some(Retention {
            mode: LockMode::Governance,
            retain_until: Utc::now() - Duration::days(1),
        });
        for meta in [&expired, &ObjectMeta::new("k", 1)] {
            let e = delete_refused(denied(), meta, "s3", "s3://bkt", "k");
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        }
        let busy = Error::new(ErrorKind::Transient, "s3", Operation::Delete, "503");
        assert_eq!(
            delete_refused(busy, &held, "s3", "s3://bkt", "k").kind(),
            ErrorKind::Transient
        );
    }

    #[tokio::test]
    async fn an_empty_get_streams_nothing() {
        let r = empty_get(ObjectMeta::new("k", 10), 4..4);
        assert_eq!(r.range, 4..4);
        assert_eq!(r.meta.size, 10);
        assert!(r.stream.collect::<Vec<_>>().await.is_empty());
    }
}
