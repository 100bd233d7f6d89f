//! The SDK configuration every offsite AWS client uses.

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;

/// The AWS SDK configuration every offsite AWS client uses (S3, and EC2 in the EBS adapter):
/// the default credential chain (or `creds`), rustls on ring (no aws-lc C build, see
/// ../shared/TESTING.md), connect and read timeouts so a stalled connection fails instead of
/// hanging, and the SDK's own retries off: offsite retries through
/// `offsite_storage::RetryPolicy`, idempotent requests only. `AWS_REGION`, `AWS_ENDPOINT_URL`
/// and `AWS_PROFILE` are read by the chain when the arguments are `None`.
pub async fn sdk_config(
    region: Option<&str>,
    endpoint: Option<&str>,
    profile: Option<&str>,
    creds: Option<aws_credential_types::provider::SharedCredentialsProvider>,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .read_timeout(std::time::Duration::from_secs(120))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(c) = creds {
        loader = loader.credentials_provider(c);
    }
    loader.load().await
}
