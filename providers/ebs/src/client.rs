//! The only file that builds the SDK client.

use aws_sdk_ec2::Client;
use offsite_storage::{Error, ErrorKind, Operation};

/// An EC2 client for `region` (else the chain's), and the region it ended up with.
pub async fn build(region: Option<&str>) -> Result<(Client, String), Error> {
    if let Some(r) = region {
        check_region(r)?;
    }
    let sdk = offsite_aws::sdk_config(region, None, None, None).await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "ebs",
            Operation::Open,
            "no AWS region: give --region (or region = \"...\" in the policy) or set AWS_REGION",
        ));
    };
    check_region(&region)?;
    Ok((Client::new(&sdk), region))
}

/// A region name as AWS writes them (`us-east-1`, `us-gov-west-1`, `cn-north-1`): anything
/// else is a typo that would otherwise surface as a DNS failure.
fn check_region(r: &str) -> Result<(), Error> {
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
            "ebs",
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
