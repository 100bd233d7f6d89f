//! The engine: runs pushes, verification and restores against stores.

pub mod access;
pub mod cache_dir;
pub mod commit;
pub mod contents;
pub mod drill;
pub mod hashing;
pub mod hidden;
pub mod identity;
pub mod inventory;
pub mod leftovers;
pub mod progress;
pub mod prune;
pub mod push;
pub mod readback;
pub mod replicate;
pub mod restore;
pub mod sign;
pub mod snapshot;
pub mod spool;
pub mod status;
pub mod verify;
