//! offsite: gets backups off the machine that made them and keeps them safe.
//!
//! The binary's pieces: [`cli`] (one file per subcommand), [`engine`] (push, verify, restore
//! against stores), [`archive`] (the layout of an archive on a store), [`registry`] (URL to
//! store), [`policy`] (a policy file's destinations as locations), [`report`] (text and
//! `--json` output, exit codes), [`metrics`] (Prometheus textfile and Pushgateway), [`signing`]
//! (this host's signing key file), [`error`] (which errors are the user's to fix) and [`units`]
//! (sizes and times in messages).

pub mod archive;
pub mod cli;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod report;
pub mod signing;
pub mod units;
