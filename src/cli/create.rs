//! `offsite create`: make the location a URL points into (directory, bucket, container).

use anyhow::Result;
use clap::Args;
use offsite_storage::CreateOptions;
use serde::Serialize;

use crate::report::{exit, outln, Output};

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

/// `--json`: the location and what was made.
#[derive(Serialize)]
struct Json<'a> {
    url: &'a str,
    created: bool,
    versioning: bool,
    object_lock: bool,
}

pub(super) async fn run(args: CreateArgs, out: Output) -> Result<u8> {
    let loc = crate::registry::open_all(std::slice::from_ref(&args.url), None)
        .await?
        .remove(0);
    let mut options = CreateOptions::default();
    options.versioning = args.versioning || args.object_lock;
    options.object_lock = args.object_lock;
    options.project = args.project.clone();
    let created = crate::engine::access::create(&loc, &options).await?;
    if out.json {
        let doc = Json {
            url: loc.url(),
            created,
            versioning: options.versioning,
            object_lock: options.object_lock,
        };
        out.print_json(&serde_json::to_value(doc)?)?;
    } else if created {
        outln!("created {}", loc.url())?;
    } else {
        outln!("{} exists already; nothing changed", loc.url())?;
    }
    Ok(exit::OK)
}
