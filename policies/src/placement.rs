//! Placement: what the policy's destinations can reach against its `[placement]` rule, and
//! why a rule cannot be met. Pure: `offsite plan` prints it; `status` judges real copies with
//! the same counting.

use std::collections::BTreeSet;

use crate::inventory::Kind;
use crate::policy::{Placement, Policy};

/// One destination as placement counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The destination's name.
    pub name: String,
    /// Its kind of storage.
    pub kind: Kind,
    /// Off site.
    pub offsite: bool,
    /// Copies there are locked.
    pub locked: bool,
    /// Filled by `replicate`, not by push.
    pub replica: bool,
}

/// The most each count can reach, and each rule that cannot be met, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Destinations (each holds one copy).
    pub copies: u32,
    /// Distinct kinds among them.
    pub media: u32,
    /// Off-site destinations.
    pub offsite: u32,
    /// Destinations that lock.
    pub immutable: u32,
    /// Why the rule cannot be met; empty when it can.
    pub problems: Vec<String>,
}

/// The slots of a policy, in its order.
pub fn slots(policy: &Policy) -> Vec<Slot> {
    policy
        .destinations
        .iter()
        .map(|d| Slot {
            name: d.name.clone(),
            kind: d.kind(),
            offsite: d.is_offsite(),
            locked: d.lock.is_some(),
            replica: policy.is_replica(&d.name),
        })
        .collect()
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `slots` can reach against the policy's placement.
pub fn reach(policy: &Policy, slots: &[Slot]) -> Reach {
    // A policy of snapshots alone places no archives: its placement is not judged.
    if !policy.has_archives() {
        return Reach {
            copies: 0,
            media: 0,
            offsite: 0,
            immutable: 0,
            problems: Vec::new(),
        };
    }
    let rule = policy.placement;
    let n = slots.len() as u32;
    let kinds: BTreeSet<Kind> = slots.iter().map(|s| s.kind).collect();
    let offsite = slots.iter().filter(|s| s.offsite).count() as u32;
    let locked = slots.iter().filter(|s| s.locked).count() as u32;
    let mut problems = Vec::new();
    let dests = plural(n, "destination", "destinations");
    if rule.copies > n {
        problems.push(format!(
            "placement wants {}; the policy has {dests}",
            plural(rule.copies, "copy", "copies")
        ));
    }
    if rule.media as usize > kinds.len() {
        let have: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        problems.push(format!(
            "placement wants {}; the {dests} are {} only",
            plural(rule.media, "kind of storage", "kinds of storage"),
            have.join(" and ")
        ));
    }
    if rule.offsite > offsite {
        problems.push(match offsite {
            0 => format!(
                "placement wants {}; none of the {dests} is off site",
                plural(rule.offsite, "off-site copy", "off-site copies")
            ),
            k => format!(
                "placement wants {}; only {k} of the {dests} {} off site",
                plural(rule.offsite, "off-site copy", "off-site copies"),
                if k == 1 { "is" } else { "are" }
            ),
        });
    }
    if rule.immutable > locked {
        problems.push(match locked {
            0 => format!(
                "immutable = {} but no destination has a lock",
                rule.immutable
            ),
            k => format!(
                "immutable = {} but only {} a lock",
                rule.immutable,
                plural(k, "destination has", "destinations have")
            ),
        });
    }
    if rule.copies < rule.media || rule.copies < rule.offsite || rule.copies < rule.immutable {
        problems.push(format!(
            "placement wants copies = {} but media, offsite and immutable each count copies: copies must be at least {}",
            rule.copies,
            rule.media.max(rule.offsite).max(rule.immutable)
        ));
    }
    Reach {
        copies: n,
        media: kinds.len() as u32,
        offsite,
        immutable: locked,
        problems,
    }
}

/// A copy that exists, as placement counts it: at which slot, and whether a lock holds it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The index of its destination among the slots.
    pub slot: usize,
    /// Under a retention lock (or legal hold) now.
    pub locked: bool,
}

/// What real copies reach against the rule, and what is missing, in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Complete copies (one per destination at most).
    pub copies: u32,
    /// Distinct kinds of storage among them.
    pub media: u32,
    /// Copies off site.
    pub offsite: u32,
    /// Copies under a lock now.
    pub immutable: u32,
    /// Every count meets the rule.
    pub met: bool,
    /// What falls short, one sentence each; empty when met.
    pub missing: Vec<String>,
}

/// Judges the copies `held` (each at one of `slots`) against `rule`. A destination counts once
/// however often it is listed.
pub fn judge(rule: Placement, slots: &[Slot], held: &[Held]) -> Verdict {
    let mut at: BTreeSet<usize> = BTreeSet::new();
    let mut locked_at: BTreeSet<usize> = BTreeSet::new();
    for h in held.iter().filter(|h| h.slot < slots.len()) {
        at.insert(h.slot);
        if h.locked {
            locked_at.insert(h.slot);
        }
    }
    let kinds: BTreeSet<Kind> = at.iter().map(|&i| slots[i].kind).collect();
    let copies = at.len() as u32;
    let media = kinds.len() as u32;
    let offsite = at.iter().filter(|&&i| slots[i].offsite).count() as u32;
    let immutable = locked_at.len() as u32;
    let mut missing = Vec::new();
    if copies < rule.copies {
        missing.push(format!(
            "{} of {} wanted",
            plural(copies, "copy", "copies"),
            rule.copies
        ));
    }
    if media < rule.media {
        let have: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        missing.push(format!(
            "{} of {} kinds of storage wanted{}",
            media,
            rule.media,
            if have.is_empty() {
                String::new()
            } else {
                format!(" (only {})", have.join(" and "))
            }
        ));
    }
    if offsite < rule.offsite {
        missing.push(format!(
            "{} of {} wanted",
            plural(offsite, "off-site copy", "off-site copies"),
            rule.offsite
        ));
    }
    if immutable < rule.immutable {
        missing.push(format!(
            "{} of {} wanted",
            plural(immutable, "locked copy", "locked copies"),
            rule.immutable
        ));
    }
    Verdict {
        copies,
        media,
        offsite,
        immutable,
        met: missing.is_empty(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn policy(dests: &str, placement: &str) -> Policy {
        let text = format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n[placement]\n{placement}\n{dests}"
        );
        Policy::parse(&text, "p.toml").unwrap()
    }

    #[test]
    fn names_what_makes_a_rule_unsatisfiable() {
        let p = policy(
            "[[destination]]\nname = \"a\"\nurl = \"file:///a\"\n[[destination]]\nname = \"b\"\nurl = \"file:///b\"\n",
            "copies = 3\nmedia = 2\noffsite = 1\nimmutable = 1",
        );
        let r = reach(&p, &slots(&p));
        assert_eq!(
            r.problems,
            [
                "placement wants 3 copies; the policy has 2 destinations",
                "placement wants 2 kinds of storage; the 2 destinations are file only",
                "placement wants 1 off-site copy; none of the 2 destinations is off site",
                "immutable = 1 but no destination has a lock",
            ]
        );
    }

    #[test]
    fn three_two_one_one_across_clouds_is_reachable() {
        let p = policy(
            "[[destination]]\nname = \"local\"\nurl = \"file:///a\"\n[[destination]]\nname = \"s3\"\nurl = \"s3://b/app\"\nlock = \"compliance\"\nlock-days = 7\n[[destination]]\nname = \"dr\"\nurl = \"gs://c/app\"\n",
            "copies = 3\nmedia = 2\noffsite = 1\nimmutable = 1",
        );
        let r = reach(&p, &slots(&p));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.copies, r.media, r.offsite, r.immutable), (3, 3, 2, 1));
    }

    #[test]
    fn a_verdict_names_what_is_missing() {
        let p = policy(
            "[[destination]]\nname = \"local\"\nurl = \"file:///a\"\n[[destination]]\nname = \"s3\"\nurl = \"s3://b/app\"\nlock = \"compliance\"\nlock-days = 7\n[[destination]]\nname = \"dr\"\nurl = \"gs://c/app\"\n",
            "copies = 3\nmedia = 2\noffsite = 1\nimmutable = 1",
        );
        let s = slots(&p);
        let only_local = judge(
            p.placement,
            &s,
            &[Held {
                slot: 0,
                locked: false,
            }],
        );
        assert_eq!(
            only_local.missing,
            [
                "1 copy of 3 wanted",
                "1 of 2 kinds of storage wanted (only file)",
                "0 off-site copies of 1 wanted",
                "0 locked copies of 1 wanted",
            ]
        );
        let all = [
            Held {
                slot: 0,
                locked: false,
            },
            Held {
                slot: 1,
                locked: true,
            },
            Held {
                slot: 2,
                locked: false,
            },
            Held {
                slot: 2,
                locked: false,
            },
        ];
        let v = judge(p.placement, &s, &all);
        assert!(v.met, "{:?}", v.missing);
        assert_eq!((v.copies, v.media, v.offsite, v.immutable), (3, 3, 2, 1));
        // A lock that has run out does not count as immutable.
        let expired = [
            all[0],
            Held {
                slot: 1,
                locked: false,
            },
            all[2],
        ];
        assert_eq!(
            judge(p.placement, &s, &expired).missing,
            ["0 locked copies of 1 wanted"]
        );
    }

    proptest! {
        /// Judging every slot's copy never does better than what the slots can reach, and
        /// meets the rule exactly when reach finds no problem but the copies-vs-counts one.
        #[test]
        fn judging_every_slot_is_the_reach(
            dests in proptest::collection::vec((0usize..4, any::<bool>(), proptest::option::of(any::<bool>())), 1..6),
            copies in 1u32..7, media in 1u32..5, offsite in 0u32..6, immutable in 0u32..6,
            held_mask in any::<u8>(),
        ) {
            let schemes = ["file:///d", "s3://b/d", "gs://b/d", "az://acct/c/d"];
            let mut text = String::new();
            for (i, (s, lock, off)) in dests.iter().enumerate() {
                text.push_str(&format!("[[destination]]\nname = \"d{i}\"\nurl = \"{}{i}\"\n", schemes[*s]));
                if *lock && *s != 0 {
                    text.push_str("lock = \"governance\"\nlock-days = 1\n");
                }
                if let Some(o) = off {
                    text.push_str(&format!("offsite = {o}\n"));
                }
            }
            let copies = copies.max(media).max(offsite).max(immutable);
            let p = policy(&text, &format!("copies = {copies}\nmedia = {media}\noffsite = {offsite}\nimmutable = {immutable}"));
            let s = slots(&p);
            let every: Vec<Held> = s.iter().enumerate().map(|(i, x)| Held { slot: i, locked: x.locked }).collect();
            let v = judge(p.placement, &s, &every);
            let r = reach(&p, &s);
            prop_assert_eq!(v.met, r.problems.is_empty());
            prop_assert_eq!((v.copies, v.media, v.offsite, v.immutable), (r.copies, r.media, r.offsite, r.immutable));
            // Any subset does no better, and is met only if every count is.
            let some: Vec<Held> = every.iter().copied().filter(|h| held_mask & (1 << h.slot) != 0).collect();
            let w = judge(p.placement, &s, &some);
            prop_assert!(w.copies <= v.copies && w.media <= v.media && w.offsite <= v.offsite && w.immutable <= v.immutable);
            prop_assert_eq!(w.met, w.copies >= copies && w.media >= media && w.offsite >= offsite && w.immutable >= immutable);
            prop_assert_eq!(w.missing.is_empty(), w.met);
        }
    }

    proptest! {
        /// The verdict agrees with counting by hand, whatever the destinations.
        #[test]
        fn reach_agrees_with_counting(
            dests in proptest::collection::vec((0usize..4, any::<bool>(), proptest::option::of(any::<bool>())), 1..6),
            copies in 1u32..7, media in 0u32..5, offsite in 0u32..6, immutable in 0u32..6,
        ) {
            let schemes = ["file:///d", "s3://b/d", "gs://b/d", "az://acct/c/d"];
            let mut text = String::new();
            for (i, (s, lock, off)) in dests.iter().enumerate() {
                let lockable = *s != 0;
                text.push_str(&format!("[[destination]]\nname = \"d{i}\"\nurl = \"{}{i}\"\n", schemes[*s]));
                if *lock && lockable {
                    text.push_str("lock = \"governance\"\nlock-days = 1\n");
                }
                if let Some(o) = off {
                    text.push_str(&format!("offsite = {o}\n"));
                }
            }
            let p = policy(&text, &format!("copies = {copies}\nmedia = {media}\noffsite = {offsite}\nimmutable = {immutable}"));
            let r = reach(&p, &slots(&p));
            let kinds: BTreeSet<usize> = dests.iter().map(|d| d.0).collect();
            let off = dests.iter().filter(|(s, _, o)| o.unwrap_or(*s != 0)).count() as u32;
            let locked = dests.iter().filter(|(s, l, _)| *l && *s != 0).count() as u32;
            let ok = copies <= dests.len() as u32
                && media as usize <= kinds.len()
                && offsite <= off
                && immutable <= locked
                && copies >= media.max(offsite).max(immutable);
            prop_assert_eq!(r.problems.is_empty(), ok, "{:?}", r.problems);
            prop_assert_eq!(r.offsite, off);
            prop_assert_eq!(r.immutable, locked);
        }
    }
}
