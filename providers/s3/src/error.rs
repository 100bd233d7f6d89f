//! SDK errors to the storage error kinds, in one place, by error code and HTTP status (never by
//! matching message strings).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use offsite_aws::{credentials_failed, sdk_words, EXPIRED_HINT, NO_CREDENTIALS_HINT, REFUSED_HINT};
use offsite_storage::{Error, ErrorKind, Operation};

/// Where a request went, for messages.
pub(crate) struct Ctx<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    pub key: &'a str,
}

pub(crate) fn map<E>(err: SdkError<E, HttpResponse>, op: Operation, ctx: &Ctx<'_>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string).unwrap_or_default();
    let (bucket, region) = (ctx.bucket, ctx.region);
    let no_credentials = matches!(err, SdkError::DispatchFailure(_)) && credentials_failed(&err);
    let (kind, hint): (ErrorKind, Option<String>) = match (&err, code.as_deref(), status) {
        // The credential chain found nothing (or failed): not the network, and no retry helps.
        _ if no_credentials => (
            ErrorKind::Unauthenticated,
            Some(NO_CREDENTIALS_HINT.into()),
        ),
        (SdkError::ConstructionFailure(_), _, _) => (ErrorKind::InvalidConfig, None),
        (SdkError::TimeoutError(_), _, _) => (ErrorKind::Transient, Some("the request timed out and was retried; if the server is slow or throttling, run again later (a push resumes where it stopped)".into())),
        (SdkError::DispatchFailure(_), _, _) => (
            ErrorKind::Transient,
            Some("cannot reach the S3 endpoint; check the network, the endpoint URL and the region".into()),
        ),
        (_, Some("NoSuchBucket"), _) => (
            ErrorKind::NotFound,
            Some(format!("bucket {bucket:?} does not exist in region {region}; create it or fix the URL")),
        ),
        (_, Some("NoSuchKey" | "NotFound" | "NoSuchVersion"), _) | (_, None, Some(404)) => (ErrorKind::NotFound, None),
        (_, Some("NoSuchUpload"), _) => (
            ErrorKind::NotFound,
            Some("the multipart upload is gone (completed, aborted, or expired by a lifecycle rule)".into()),
        ),
        (_, Some("ExpiredToken" | "TokenRefreshRequired" | "RequestExpired"), _) => (
            ErrorKind::Unauthenticated,
            Some(EXPIRED_HINT.into()),
        ),
        (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "MissingSecurityHeader"), _) => (
            ErrorKind::Unauthenticated,
            Some(REFUSED_HINT.into()),
        ),
        (_, Some("AccessDenied" | "AllAccessDisabled" | "AccountProblem"), _) | (_, None, Some(403)) => (
            ErrorKind::PermissionDenied,
            Some(format!("the credentials may not do this on bucket {bucket:?}; check the IAM policy and bucket policy")),
        ),
        (_, Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException"), _)
        | (_, None, Some(301)) => (
            ErrorKind::InvalidConfig,
            Some(format!("bucket {bucket:?} is not in region {region}; add ?region=THE-BUCKET'S-REGION to the URL")),
        ),
        (_, Some("InvalidObjectState"), _) => (
            ErrorKind::Archived,
            Some("the object is in an archive storage class (GLACIER or DEEP_ARCHIVE) and must be restored first; run the restore again with --thaw to request it, then once more when S3 has restored it (minutes to 48 hours)".into()),
        ),
        (_, Some("PreconditionFailed"), _) | (_, None, Some(412)) => (ErrorKind::PreconditionFailed, None),
        (_, Some("ConditionalRequestConflict"), _) | (_, None, Some(409)) => (ErrorKind::PreconditionFailed, None),
        (_, Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests"), _)
        | (_, None, Some(429 | 503)) => (ErrorKind::RateLimited, None),
        (_, Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch"), _) => (
            ErrorKind::Corrupt,
            Some("the server received different bytes than were sent; the part is sent again from the spool".into()),
        ),
        (_, Some("InvalidStorageClass"), _) => (
            ErrorKind::InvalidConfig,
            Some("this server does not accept that storage class; change or remove storage-class".into()),
        ),
        (_, Some("InvalidRequest" | "InvalidArgument"), _) => (ErrorKind::InvalidConfig, None),
        // An S3-compatible server without this operation (501): asking again cannot help.
        (_, Some("NotImplemented" | "MethodNotAllowed"), _) | (_, None, Some(501 | 405)) => (
            ErrorKind::Unsupported,
            Some("this S3-compatible server does not implement the operation".into()),
        ),
        (_, Some("InternalError" | "ServiceUnavailable" | "RequestTimeout"), _) => (ErrorKind::Transient, None),
        (_, _, Some(s)) if s >= 500 => (ErrorKind::Transient, None),
        _ => (ErrorKind::Other, None),
    };
    let what = sdk_words(&err, no_credentials, code.as_deref(), &message, status);
    let mut e = Error::new(kind, "s3", op, format!("s3://{bucket}: {what}"))
        .with_key(ctx.key)
        .with_source(err);
    if kind == ErrorKind::Corrupt {
        e = e.retryable(true);
    }
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn service_error(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("The requested range is not satisfiable")
            .build();
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(meta), raw)
    }

    #[test]
    fn the_service_error_code_is_kept_for_decisions() {
        // A ranged get tells a range outside the object from other refusals by this code.
        let ctx = Ctx {
            bucket: "bkt",
            region: "us-east-1",
            key: "k",
        };
        let e = map(service_error(416, "InvalidRange"), Operation::Get, &ctx);
        assert_eq!(e.code(), Some("InvalidRange"));
        assert_eq!(
            e.message(),
            "s3://bkt: InvalidRange: The requested range is not satisfiable"
        );
        let e = map(service_error(404, "NoSuchKey"), Operation::Get, &ctx);
        assert_eq!(e.code(), Some("NoSuchKey"));
        assert!(e.is_not_found());
    }
}
