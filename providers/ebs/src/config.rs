//! What configures the EBS adapter: the region (else `AWS_REGION` and the rest of the AWS
//! default chain, read when the client is built). Credentials, profile and endpoint
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_EC2`) come from the chain too.

use offsite_storage::{Error, ErrorKind, Operation};

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "ebs";

/// The adapter's settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct EbsConfig {
    /// Where snapshots are made and listed; `None`: the chain's region.
    pub(crate) region: Option<String>,
}

impl EbsConfig {
    /// The settings for `region`, checked.
    pub(crate) fn new(region: Option<&str>) -> Result<EbsConfig, Error> {
        if let Some(r) = region {
            check_region(r)?;
        }
        Ok(EbsConfig {
            region: region.map(str::to_string),
        })
    }
}

/// A region name as AWS writes them (`us-east-1`, `us-gov-west-1`, `cn-north-1`): anything
/// else is a typo that would otherwise surface as a DNS failure.
pub(crate) fn check_region(r: &str) -> Result<(), Error> {
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER,
            Operation::Open,
            format!("unknown region {r:?}"),
        )
        .with_hint("AWS regions look like us-east-1 or eu-central-2; `aws ec2 describe-regions` lists them"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_names() {
        for ok in ["us-east-1", "us-gov-west-1", "ap-southeast-4", "cn-north-1"] {
            assert!(super::check_region(ok).is_ok(), "{ok}");
        }
        for bad in ["us-east", "US-EAST-1", "useast1", "us-east-1a", "xx--1", ""] {
            let e = super::check_region(bad).unwrap_err();
            assert!(e.to_string().contains("unknown region"), "{e}");
        }
    }
}
