//! The offsite policy engine.
//!
//! Planning is pure: functions here take an inventory and a rule and return decisions; the
//! `offsite` binary executes them against stores. It holds [`encryption`], the age recipients
//! every encrypted push needs, and [`inventory`], the model of archives, series and copies
//! that the planners read and the binary fills from what it lists; [`policy`], the policy file
//! (parsed and checked, with [`duration`] spans); and [`placement`], what a policy's
//! destinations can reach against its 3-2-1-1-0 rule and what real copies reach; and
//! [`status`], whether a policy's rules hold over an inventory; [`retention`], what prune keeps;
//! [`replication`], the streaming plan that `offsite replicate` carries out; and [`snapshots`],
//! what `offsite snapshot prune` keeps of each volume's snapshots; and [`snapshot_status`], how
//! each volume's snapshots stand region by region (what `status` reports and prune reads); and
//! [`signing`], the keys that sign manifests and the signers a reader trusts; and [`rto`], how
//! long a restore from each destination would take against the policy's `rto`.

pub mod clock;
pub mod duration;
pub mod encryption;
pub mod inventory;
pub mod placement;
pub mod policy;
pub mod replication;
pub mod retention;
pub mod rto;
pub mod signing;
pub mod snapshot_status;
pub mod snapshots;
pub mod status;
