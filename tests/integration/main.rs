//! End-to-end tests of the `offsite` binary: real files, real age, real exit codes.
//! One test binary for the whole suite (DESIGN.md: every test binary links everything).
//! It holds the tests of the providers this build has: `cargo test --no-default-features
//! --features s3` builds and runs the S3 ones beside the local-disk ones.

// A single-provider build leaves some shared helpers unused.
#![cfg_attr(
    not(all(feature = "s3", feature = "gcs", feature = "azure")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "azure")]
mod azure;
#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod campaign;
mod clock;
mod common;
mod contents;
mod endurance;
mod examples;
#[cfg(any(feature = "gce-disk", feature = "azure-disk"))]
mod fake_api;
#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod faults;
mod first_use;
#[cfg(feature = "gcs")]
mod gcs;
mod interop;
mod interrupt;
#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod inventory;
#[cfg(all(feature = "s3", feature = "gcs"))]
mod jobs;
mod layout;
mod newuser;
mod plan;
mod proxy;
mod prune;
mod push;
mod race;
#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod replicate;
mod restore;
mod rto;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
mod s3_cli;
#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod secrets;
mod signing;
#[cfg(feature = "azure-disk")]
mod snapshots_azure;
#[cfg(all(feature = "ebs", feature = "s3"))]
mod snapshots_ebs;
#[cfg(feature = "gce-disk")]
mod snapshots_gcp;
mod trust;
mod user_reads;
mod verify;
