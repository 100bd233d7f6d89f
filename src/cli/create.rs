//! `offsite create`: make the location a URL points into (directory, bucket, container).

use anyhow::Result;
use clap::Args;
use offsite_storage::{CreateOptions, ErrorKind};
use serde_json::json;

use crate::report::{exit, outln, usage, Output};

/// Arguments of `offsite create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The location (file:///var/backups/app, s3://bucket/app, gs://bucket, az://account/container).
    #[arg(value_name = "URL")]
    url: String,
    /// Keep every version of every object (S3 versioning, GCS object versioning; on Azure an
    /// account setting, refused here with the `az` command that sets it).
    #[arg(long)]
    versioning: bool,
    /// Let objects carry retention locks (S3 Object Lock, which implies versioning; GCS object
    /// retention). Only at creation: neither can turn it on for an existing bucket.
    #[arg(long)]
    object_lock: bool,
    /// The project a new GCS bucket belongs to (else GOOGLE_CLOUD_PROJECT).
    #[arg(long, value_name = "ID")]
    project: Option<String>,
}

pub(super) async fn run(args: CreateArgs, out: Output) -> Result<u8> {
    let loc = super::open_all(std::slice::from_ref(&args.url), None)
        .await?
        .remove(0);
    let mut options = CreateOptions::default();
    options.versioning = args.versioning || args.object_lock;
    options.object_lock = args.object_lock;
    options.project = args.project.clone();
    let created = match loc.store.create_location(&options).await {
        Ok(created) => created,
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::InvalidConfig) => {
            return Err(usage(format!("cannot create {} as asked: {e}", loc.url())))
        }
        Err(e) => return Err(anyhow::anyhow!("cannot create {}: {e}", loc.url())),
    };
    if out.json {
        out.print_json(&json!({
            "url": loc.url(),
            "created": created,
            "versioning": options.versioning,
            "object_lock": options.object_lock,
        }))?;
    } else if created {
        outln!("created {}", loc.url())?;
    } else {
        outln!("{} exists already; nothing changed", loc.url())?;
    }
    Ok(exit::OK)
}
