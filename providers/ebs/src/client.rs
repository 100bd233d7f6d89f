//! The only file that builds the SDK client.

use aws_sdk_ec2::Client;
use offsite_storage::{Error, ErrorKind, Operation};

use crate::config::{check_region, EbsConfig, PROVIDER};

/// An EC2 client for the configured region (else the chain's), and the region it ended up
/// with.
pub async fn build(cfg: &EbsConfig) -> Result<(Client, String), Error> {
    let sdk = offsite_aws::sdk_config(cfg.region.as_deref(), None, None, None).await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER,
            Operation::Open,
            "no AWS region: give --region (or region = \"...\" in the policy) or set AWS_REGION",
        ));
    };
    check_region(&region)?;
    Ok((Client::new(&sdk), region))
}
