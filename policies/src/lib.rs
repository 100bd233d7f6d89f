//! The offsite policy engine.
//!
//! Planning is pure: functions here take an inventory and a rule and return decisions; the
//! `offsite` binary executes them against stores. This crate starts with [`encryption`], the
//! age recipients every encrypted push needs.

pub mod encryption;
