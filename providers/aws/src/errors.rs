//! How an AWS SDK failure reads: the hints for missing, expired and refused credentials, the
//! words of an error, and whether the credential chain is what failed.

use aws_smithy_types::error::display::DisplayErrorContext;

/// What to do when the AWS credential chain finds nothing (S3 and EBS alike).
pub const NO_CREDENTIALS_HINT: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (run `aws sso login` for an SSO profile), or run with a workload identity";
/// What to do when AWS says the credentials expired.
pub const EXPIRED_HINT: &str =
    "the AWS credentials have expired; refresh them (aws sso login, a new session token) and run again";
/// What to do when AWS refuses the credentials.
pub const REFUSED_HINT: &str =
    "the AWS credentials were not accepted; check AWS_ACCESS_KEY_ID / AWS_PROFILE and the secret";

/// The words of an SDK error for a message: that the credential chain found nothing, else the
/// service's code and message, else the HTTP status, else the whole error chain.
pub fn sdk_words<E: std::error::Error>(
    err: &E,
    no_credentials: bool,
    code: Option<&str>,
    message: &str,
    status: Option<u16>,
) -> String {
    match (code, status) {
        _ if no_credentials => "no usable AWS credentials from the default chain (environment, profile, web identity, container, instance metadata)".to_string(),
        (Some(c), _) if message.is_empty() => c.to_string(),
        (Some(c), _) => format!("{c}: {message}"),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => DisplayErrorContext(err).to_string(),
    }
}

/// Whether the request failed because the credential chain gave no credentials.
pub fn credentials_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = src {
        if s.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        src = s.source();
    }
    false
}
