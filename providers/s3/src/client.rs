//! The only file that builds the SDK client.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;

use crate::config::S3Config;

/// A client from the AWS default chain, with the location's region and endpoint.
pub async fn build(cfg: &S3Config) -> (Client, String) {
    build_with(cfg, None).await
}

/// The same, with fixed credentials instead of the chain (emulators, tests).
pub async fn build_with(
    cfg: &S3Config,
    creds: Option<aws_sdk_s3::config::Credentials>,
) -> (Client, String) {
    let sdk = sdk_config(
        cfg.region.as_deref(),
        cfg.endpoint.as_deref(),
        cfg.profile.as_deref(),
        creds.map(aws_credential_types::provider::SharedCredentialsProvider::new),
    )
    .await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let path_style = cfg.path_style.unwrap_or(sdk.endpoint_url().is_some());
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .region(Region::new(region.clone()))
        .force_path_style(path_style)
        .build();
    (Client::from_conf(conf), region)
}

/// The AWS SDK configuration every offsite AWS client uses (S3 here, EC2 in the EBS adapter):
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
