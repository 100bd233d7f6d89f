//! The Google Cloud Storage adapter for the offsite Storage contract (JSON API).
//!
//! Uploads are resumable sessions: chunks of at least 8 MiB sent in order, the session URL kept
//! by push's journal so that a killed push resumes where the server says it stopped, and the
//! object's CRC32C and MD5 sent with the final chunk, so that GCS refuses an object whose bytes
//! differ from what was read. Reads, listing, deletes and rewrites go through `gcloud-storage`;
//! the upload sessions, object retention and holds, which that crate does not model, are plain
//! JSON API requests made here.
//!
//! Credentials: application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//! ADC file, workload identity, the metadata server). `STORAGE_EMULATOR_HOST` (or `?endpoint=`)
//! points at an emulator and uses no credentials.
//!
//! `create_location` inserts the bucket in `CreateOptions::project`, else `GOOGLE_CLOUD_PROJECT`,
//! with object versioning and object retention when asked (retention only at creation: GCS
//! cannot turn it on later). Versions are generations; there are no multipart uploads to list.

mod bucket;
mod client;
mod config;
mod error;
mod metadata;
mod session;
mod store;

pub use config::GcsConfig;
pub use store::GcsStore;
