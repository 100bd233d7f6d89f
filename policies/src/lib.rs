//! The offsite policy engine.
//!
//! Planning is pure: functions here take an inventory and a rule and return decisions; the
//! `offsite` binary executes them against stores. It holds [`encryption`], the age recipients
//! every encrypted push needs, and [`inventory`], the model of archives, series and copies
//! that the planners read and the binary fills from what it lists.

pub mod encryption;
pub mod inventory;
