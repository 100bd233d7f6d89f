//! SDK errors and failed operations to the storage error kinds, by HTTP status and Google's
//! error reason (never by message text).

use google_cloud_compute_v1::model;
use google_cloud_gax::error::rpc::StatusDetails;
use offsite_storage::{Error, ErrorKind, Operation};

/// The reasons (`notFound`, `quotaExceeded`, `QUOTA_EXCEEDED`...) an API error carries.
fn reasons(err: &google_cloud_gax::error::Error) -> Vec<String> {
    err.status()
        .map(|s| {
            s.details
                .iter()
                .filter_map(|d| match d {
                    StatusDetails::ErrorInfo(i) => Some(i.reason.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kind_of(status: Option<u16>, reasons: &[String], project: &str) -> (ErrorKind, Option<String>) {
    let has = |r: &str| reasons.iter().any(|x| x.eq_ignore_ascii_case(r));
    if has("quotaExceeded") || has("QUOTA_EXCEEDED") || has("RESOURCE_QUOTA_EXCEEDED") {
        return (
            ErrorKind::RateLimited,
            Some(format!("a Compute Engine quota of project {project} is used up (SNAPSHOTS counts every snapshot): prune old snapshots or ask for a higher quota (IAM & Admin, Quotas)")),
        );
    }
    if has("rateLimitExceeded") || has("RATE_LIMIT_EXCEEDED") || status == Some(429) {
        return (ErrorKind::RateLimited, None);
    }
    match status {
        Some(404) => (
            ErrorKind::NotFound,
            Some(format!("check the name, zone and project {project} (`gcloud compute disks list --project {project}`)")),
        ),
        Some(409) => (ErrorKind::AlreadyExists, None),
        Some(401) => (
            ErrorKind::Unauthenticated,
            Some("the Google credentials were refused or have expired: refresh them (gcloud auth application-default login) or check GOOGLE_APPLICATION_CREDENTIALS".into()),
        ),
        Some(403) => (
            ErrorKind::PermissionDenied,
            Some(format!("the credentials may not do this in project {project}: grant compute.snapshots.create/get/list/delete, compute.disks.createSnapshot/create/get/list and compute.globalOperations.get (roles/compute.storageAdmin)")),
        ),
        Some(400) => (ErrorKind::InvalidConfig, None),
        Some(s) if s >= 500 => (ErrorKind::Transient, None),
        _ => (ErrorKind::Other, None),
    }
}

/// An API error.
pub(crate) fn map(
    err: google_cloud_gax::error::Error,
    op: Operation,
    project: &str,
    key: &str,
) -> Error {
    let status = err.http_status_code();
    let rs = reasons(&err);
    let (mut kind, hint) = kind_of(status, &rs, project);
    if status.is_none() && (err.is_timeout() || err.is_connect() || err.is_io()) {
        kind = ErrorKind::Transient;
    }
    if err.is_authentication() {
        kind = ErrorKind::Unauthenticated;
    }
    let message = match err.status() {
        Some(s) if !s.message.is_empty() => s.message.clone(),
        _ => err.to_string(),
    };
    let mut e = Error::new(
        kind,
        "gce-disk",
        op,
        format!("project {project}: {message}"),
    )
    .with_key(key)
    .with_source(err);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(r) = rs.first() {
        e = e.with_code(r.clone());
    }
    e
}

/// The error a finished operation carries, if any: the provider's code and words.
pub(crate) fn of_operation(
    o: &model::Operation,
    op: Operation,
    project: &str,
    key: &str,
) -> Option<Error> {
    let first = o.error.as_ref().and_then(|e| e.errors.first());
    let http = o
        .http_error_status_code
        .filter(|s| *s >= 400)
        .and_then(|s| u16::try_from(s).ok());
    if first.is_none() && http.is_none() {
        return None;
    }
    let code = first.and_then(|f| f.code.clone()).unwrap_or_default();
    let message = first
        .and_then(|f| f.message.clone())
        .or_else(|| o.http_error_message.clone())
        .unwrap_or_default();
    let (kind, hint) = kind_of(http, std::slice::from_ref(&code), project);
    let mut e = Error::new(
        kind,
        "gce-disk",
        op,
        format!(
            "project {project}: the operation failed: {code}{}{message}",
            if code.is_empty() { "" } else { ": " }
        ),
    )
    .with_key(key)
    .retryable(false);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if !code.is_empty() {
        e = e.with_code(code);
    }
    Some(e)
}
