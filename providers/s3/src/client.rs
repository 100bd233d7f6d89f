//! The only file that builds the SDK client.

use aws_config::Region;
use aws_sdk_s3::Client;

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
    let sdk = offsite_aws::sdk_config(
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
