//! SDK errors to the storage error kinds, by EC2 error code and HTTP status.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use offsite_aws::{credentials_failed, sdk_words, EXPIRED_HINT, NO_CREDENTIALS_HINT, REFUSED_HINT};
use offsite_storage::{Error, ErrorKind, Operation};

pub(crate) fn map<E>(
    err: SdkError<E, HttpResponse>,
    op: Operation,
    region: &str,
    key: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string).unwrap_or_default();
    let no_credentials = matches!(err, SdkError::DispatchFailure(_)) && credentials_failed(&err);
    let (kind, hint): (ErrorKind, Option<String>) = match (&err, code.as_deref(), status) {
        _ if no_credentials => (
            ErrorKind::Unauthenticated,
            Some(NO_CREDENTIALS_HINT.into()),
        ),
        (SdkError::ConstructionFailure(_), _, _) => (ErrorKind::InvalidConfig, None),
        (SdkError::TimeoutError(_), _, _) => (ErrorKind::Transient, None),
        (SdkError::DispatchFailure(_), _, _) => (
            ErrorKind::Transient,
            Some(format!("cannot reach EC2 in {region}; check the network and the region name")),
        ),
        (_, Some("InvalidVolume.NotFound" | "InvalidVolumeID.Malformed"), _) => (
            ErrorKind::NotFound,
            Some(format!("no such volume in {region}; check the id and the region (`aws ec2 describe-volumes --region {region}`)")),
        ),
        (_, Some("InvalidSnapshot.NotFound" | "InvalidSnapshotID.Malformed"), _) => (
            ErrorKind::NotFound,
            Some(format!("no such snapshot in {region}; `offsite snapshot list --provider aws --region {region}` lists them")),
        ),
        (_, Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed"), _) => (
            ErrorKind::NotFound,
            Some(format!("no such instance in {region}; check the id and the region")),
        ),
        (_, Some("InvalidSnapshot.InUse"), _) => (
            ErrorKind::Locked,
            Some("the snapshot is in use (behind an AMI, or being copied); deregister the image first".into()),
        ),
        (_, Some("SnapshotLimitExceeded" | "SnapshotCreationPerVolumeRateExceeded" | "ResourceLimitExceeded" | "VolumeLimitExceeded" | "MaxIOPSLimitExceeded"), _) => (
            ErrorKind::RateLimited,
            Some("an EC2 quota or rate limit: prune old snapshots, wait, or ask AWS for a higher quota (Service Quotas, EBS)".into()),
        ),
        (_, Some("ExpiredToken" | "RequestExpired"), _) => (
            ErrorKind::Unauthenticated,
            Some(EXPIRED_HINT.into()),
        ),
        (_, Some("AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch"), _) => (
            ErrorKind::Unauthenticated,
            Some(REFUSED_HINT.into()),
        ),
        (_, Some("UnauthorizedOperation" | "AccessDenied" | "OptInRequired"), _) | (_, None, Some(403)) => (
            ErrorKind::PermissionDenied,
            Some(format!("the credentials may not do this in {region}; the IAM policy needs ec2:CreateSnapshot(s), ec2:CreateTags, ec2:DescribeSnapshots, ec2:CopySnapshot, ec2:DeleteSnapshot, ec2:CreateVolume and ec2:DescribeVolumes (and kms: permissions for an encrypted copy)")),
        ),
        (_, Some("InvalidParameterValue" | "InvalidParameter" | "InvalidParameterCombination" | "MissingParameter" | "InvalidZone.NotFound" | "UnknownVolumeType"), _) => (ErrorKind::InvalidConfig, None),
        (_, Some("IncorrectState" | "IncorrectInstanceState"), _) => (ErrorKind::PreconditionFailed, None),
        (_, Some("RequestLimitExceeded" | "Throttling"), _) | (_, None, Some(429 | 503)) => (ErrorKind::RateLimited, None),
        (_, Some("InternalError" | "ServiceUnavailable" | "Unavailable"), _) => (ErrorKind::Transient, None),
        (_, _, Some(s)) if s >= 500 => (ErrorKind::Transient, None),
        _ => (ErrorKind::Other, None),
    };
    let what = sdk_words(&err, no_credentials, code.as_deref(), &message, status);
    let mut e = Error::new(kind, "ebs", op, format!("{region}: {what}"))
        .with_key(key)
        .with_source(err);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}
