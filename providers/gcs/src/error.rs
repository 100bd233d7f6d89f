//! GCS answers to the storage error kinds, in one place, by HTTP status and the JSON error's
//! `reason` (never by matching message text).

use offsite_storage::{Error, ErrorKind, Operation};

/// Where a request went, for messages.
pub(crate) struct Ctx<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
}

/// Maps an HTTP status and the JSON error's first `reason`.
pub(crate) fn from_status(
    status: u16,
    reason: Option<&str>,
    message: &str,
    op: Operation,
    ctx: &Ctx<'_>,
) -> Error {
    let bucket = ctx.bucket;
    let (kind, hint): (ErrorKind, Option<String>) = match (status, reason) {
        (404, _) if matches!(op, Operation::List | Operation::Open) => (
            ErrorKind::NotFound,
            Some(format!("check that bucket {bucket:?} exists and the name is right")),
        ),
        (404, _) => (ErrorKind::NotFound, None),
        (401, _) => (
            ErrorKind::Unauthenticated,
            Some("the Google credentials were refused or expired; run `gcloud auth application-default login` or check GOOGLE_APPLICATION_CREDENTIALS".into()),
        ),
        (403, Some("retentionPolicyNotMet" | "objectUnderActiveHold" | "objectRetentionNotMet")) => (
            ErrorKind::Locked,
            Some("the object is under retention or a hold and cannot be changed before it expires".into()),
        ),
        // Rate limits come as 403 with these reasons (the JSON API's errors page), not 429.
        (403, Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")) => {
            (ErrorKind::RateLimited, None)
        }
        (403, _) => (
            ErrorKind::PermissionDenied,
            Some(format!("the credentials may not do this on bucket {bucket:?}; grant roles/storage.objectAdmin or check the bucket's IAM")),
        ),
        (412, _) => (ErrorKind::PreconditionFailed, None),
        (429, _) => (ErrorKind::RateLimited, None),
        (408, _) | (500..=599, _) => (ErrorKind::Transient, None),
        (400, Some("invalid" | "required" | "invalidParameter")) | (400, _) => (ErrorKind::InvalidConfig, None),
        (410, _) => (
            ErrorKind::NotFound,
            Some("the resumable upload session has expired; the upload starts over".into()),
        ),
        _ => (ErrorKind::Other, None),
    };
    let mut e = Error::new(
        kind,
        "gcs",
        op,
        format!(
            "gs://{bucket}: HTTP {status}{}: {message}",
            reason.map(|r| format!(" {r}")).unwrap_or_default()
        ),
    )
    .with_key(ctx.key);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(r) = reason {
        e = e.with_code(r);
    }
    e
}

/// Maps an error from the `gcloud-storage` crate.
pub(crate) fn from_crate(err: gcloud_storage::http::Error, op: Operation, ctx: &Ctx<'_>) -> Error {
    use gcloud_storage::http::Error as E;
    match &err {
        E::Response(r) => {
            let reason = r.errors.first().map(|i| i.reason.as_str());
            from_status(r.code, reason, &r.message, op, ctx)
        }
        E::HttpClient(e) => transport(e, op, ctx),
        E::TokenSource(e) => Error::new(ErrorKind::Unauthenticated, "gcs", op, format!("gs://{}: cannot get a token: {e}", ctx.bucket))
            .with_key(ctx.key)
            .with_hint("run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or use a workload identity"),
        other => Error::new(ErrorKind::Other, "gcs", op, format!("gs://{}: {other}", ctx.bucket)).with_key(ctx.key),
    }
}

/// Maps a transport failure (connection refused, reset, timeout): retryable.
pub(crate) fn transport(err: &reqwest::Error, op: Operation, ctx: &Ctx<'_>) -> Error {
    // reqwest's Display can include the request URL; a resumable session URL is a credential,
    // so say what happened without it.
    let (what, hint) = if err.is_timeout() {
        (
            "the server did not answer in time",
            "it was retried; if GCS is slow or throttling, run again later (a push resumes where it stopped)",
        )
    } else if err.is_connect() {
        (
            "cannot connect to the GCS endpoint",
            "check the network, and the endpoint (endpoint= in the URL, or STORAGE_EMULATOR_HOST) if one is set",
        )
    } else if err.is_body() || err.is_decode() {
        (
            "the connection broke off mid-transfer",
            "it was retried; run again (a push resumes from what GCS has persisted)",
        )
    } else {
        (
            "the request could not be sent",
            "check the endpoint URL and any HTTPS_PROXY / NO_PROXY settings",
        )
    };
    Error::new(
        ErrorKind::Transient,
        "gcs",
        op,
        format!("gs://{}: {what}", ctx.bucket),
    )
    .with_key(ctx.key)
    .with_hint(hint)
}

/// Reads a JSON API error response.
pub(crate) async fn from_response(resp: reqwest::Response, op: Operation, ctx: &Ctx<'_>) -> Error {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    let err = &body["error"];
    let reason = err["errors"][0]["reason"].as_str();
    let message = err["message"].as_str().unwrap_or("");
    from_status(status, reason, message, op, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_rate_limit_is_rate_limiting_not_permission() {
        let ctx = Ctx {
            bucket: "b",
            key: "k",
        };
        for reason in ["rateLimitExceeded", "userRateLimitExceeded"] {
            let e = from_status(403, Some(reason), "slow down", Operation::Put, &ctx);
            assert_eq!(e.kind(), ErrorKind::RateLimited, "{reason}");
        }
        let e = from_status(403, Some("forbidden"), "no", Operation::Put, &ctx);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }
}
