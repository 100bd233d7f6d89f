//! Resumable upload sessions that take bytes in order (Google Cloud Storage): one session per
//! object, chunks sent at increasing offsets, the session URL surviving the process so that a
//! rerun asks how much the server has persisted and continues from there.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::types::{Checksum, PutOptions, Receipt};

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// The server has persisted this many bytes from the start.
    Persisted(u64),
    /// The object is complete and visible.
    Complete(Receipt),
}

/// The whole-object digests a provider checks at finalize, computed while sending.
pub trait ObjectDigest: Send {
    /// Adds bytes, in object order.
    fn update(&mut self, data: &[u8]);
    /// A copy of the state so far (to finish a final chunk's digests and keep going on retry).
    fn fork(&self) -> Box<dyn ObjectDigest>;
    /// The digests, in the provider's forms.
    fn finish(self: Box<Self>) -> Vec<Checksum>;
}

/// A provider's resumable upload sessions.
#[async_trait]
pub trait Sequential: Send + Sync {
    /// Every chunk but the last must be a multiple of this many bytes.
    fn granularity(&self) -> u64;
    /// The chunk size to use.
    fn chunk_size(&self) -> u64;
    /// A fresh digest of the kind [`Sequential::put_chunk`] wants at the end.
    fn digest(&self) -> Box<dyn ObjectDigest>;
    /// Starts a session; returns its id (for GCS, the session URL, which authenticates itself:
    /// treat it as a secret, keep it out of logs).
    async fn start_session(&self, key: &str, options: &PutOptions) -> Result<String>;
    /// Asks how much a session has persisted. `NotFound` when it expired or was cancelled.
    async fn session_state(&self, key: &str, session: &str) -> Result<SessionState>;
    /// Sends `data` at `offset`. `last` carries the object's total size and whole-object
    /// digests on the final chunk; the provider then verifies and publishes the object.
    async fn put_chunk(
        &self,
        key: &str,
        session: &str,
        offset: u64,
        data: Bytes,
        last: Option<(u64, Vec<Checksum>)>,
    ) -> Result<SessionState>;
    /// Abandons a session; nothing becomes visible.
    async fn cancel_session(&self, key: &str, session: &str) -> Result<()>;
}
