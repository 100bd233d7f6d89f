//! The engine: runs pushes, verification and restores against stores.

pub mod drill;
pub mod hidden;
pub mod holdings;
pub mod identity;
pub mod inventory;
pub mod progress;
pub mod push;
pub mod readback;
pub mod replicate;
pub mod restore;
pub mod snapshot;
pub mod spool;
pub mod verify;
