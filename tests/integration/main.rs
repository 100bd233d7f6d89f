//! End-to-end tests of the `offsite` binary: real files, real age, real exit codes.
//! One test binary for the whole suite (DESIGN.md: every test binary links everything).

mod azure;
mod common;
mod gcs;
mod interop;
mod proxy;
mod push;
mod restore;
mod s3;
mod s3_cli;
mod verify;
