//! The S3 adapter for the offsite Storage contract (Amazon S3 and S3-compatible stores).
//!
//! Multipart uploads carry a SHA-256 per part, so the server rejects a corrupted part; an
//! upload is addressed by id, so a push killed half-way resumes by listing the parts the server
//! has. Deletes go by version id, so on Object Lock buckets a lock refusal surfaces as
//! `Locked` instead of a delete marker hiding data that stays. Buckets are created with
//! versioning and Object Lock when asked, versions listed and deleted, retentions extended
//! (never shortened) and open multipart uploads listed.
//!
//! Credentials come only from the AWS default chain (environment, profile, SSO, web identity,
//! instance metadata). The location's query may set `region`, `endpoint`, `path-style`,
//! `sse-kms-key`, `part-size-mib` and `concurrency`; `AWS_ENDPOINT_URL` and `AWS_REGION` are
//! honoured too.

mod client;
mod config;
mod copy;
mod error;
mod manage;
mod metadata;
mod multipart;
mod store;

pub use config::S3Config;
pub use store::S3Store;
