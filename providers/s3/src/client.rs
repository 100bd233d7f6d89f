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
    // rustls on ring: no aws-lc C build (see ../shared/TESTING.md).
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    // A stalled connection fails (and is retried) instead of hanging the push forever.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .read_timeout(std::time::Duration::from_secs(120))
        .build();
    // One retry layer: the SDK's own retries are off, and the adapter retries through
    // offsite_storage::RetryPolicy (bounded attempts and backoff), idempotent requests only.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &cfg.endpoint {
        loader = loader.endpoint_url(e);
    }
    if let Some(p) = &cfg.profile {
        loader = loader.profile_name(p);
    }
    if let Some(c) = creds {
        loader = loader.credentials_provider(c);
    }
    let sdk = loader.load().await;
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
