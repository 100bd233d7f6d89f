//! The EBS adapter for the offsite [`Snapshots`](offsite_storage::Snapshots) contract.
//!
//! Snapshots are made with CreateSnapshot (one volume) or CreateSnapshots (every volume of an
//! instance at one point in time, crash-consistent across them), tagged at creation; a rerun
//! finds what a client token already made by its tag, since neither call takes a client token.
//! Copies to other regions are CopySnapshot calls made in the target region, optionally
//! encrypted with a KMS key of that region. Volumes are restored with CreateVolume, whose
//! `ClientToken` makes a rerun idempotent.
//!
//! Credentials and settings come from the AWS default chain, as for `s3://`: `AWS_REGION`
//! (unless a region is given), `AWS_PROFILE`, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_EC2`)
//! for an emulator.

mod client;
mod config;
mod error;
mod store;

pub use store::EbsSnapshots;
