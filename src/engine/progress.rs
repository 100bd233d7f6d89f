//! Progress, as the engine reports it: bytes through a long operation, told to an observer the
//! caller supplies (the CLI draws a bar on a terminal; tests and JSON output pass none).

use std::sync::Arc;

/// Told how far a long operation has come, in bytes. Called from the threads that move the
/// bytes: cheap, and never blocking.
pub trait Observer: Send + Sync {
    /// The total, once it is known (a restore learns it from the manifest).
    fn set_length(&self, len: u64);
    /// Back to `pos` (a source read twice: hashed, then encrypted).
    fn set_position(&self, pos: u64);
    /// `n` more bytes done.
    fn inc(&self, n: u64);
}

/// An observer, or none.
pub type Progress = Option<Arc<dyn Observer>>;
