//! Whose manifests a reader trusts. Where trusted signers are configured (`[signing] trusted`,
//! `trusted-file`, `--trust`, `--trusted-file`), every manifest read is judged: signed in
//! offsite's namespace by a trusted key within its validity at the signed push time, over
//! exactly the bytes it holds, and for the archive whose name it is stored under. A copy that
//! fails is [`State::Untrusted`](super::State::Untrusted) and counts for nothing. The verdict
//! is made on every read, never cached, so a change of the trusted set takes effect at once.

use std::sync::Arc;

use offsite_policies::signing::{TrustedSigners, Verdict};

use crate::archive::{Manifest, Signed, VerifiedRecord, AGE_SUFFIX};

/// The keys a reader trusts; none configured means every archive counts as trusted, as
/// before signing.
#[derive(Debug, Clone, Default)]
pub struct Signers(Option<Arc<TrustedSigners>>);

impl Signers {
    /// Trusts the keys of `set`; an empty set checks nothing.
    pub fn new(set: TrustedSigners) -> Signers {
        Signers((!set.is_empty()).then(|| Arc::new(set)))
    }

    /// Whether signatures are checked.
    pub fn configured(&self) -> bool {
        self.0.is_some()
    }

    /// Whether what `key` signs now verifies: its public key is trusted (for offsite's
    /// namespace, at this time).
    pub fn trusts(&self, key: &offsite_policies::signing::SigningKey) -> bool {
        let probe = b"offsite: is this key trusted?";
        self.0.as_ref().is_some_and(|set| {
            matches!(
                set.verify(probe, Some(&key.sign(probe)), chrono::Utc::now()),
                Verdict::Trusted { .. }
            )
        })
    }

    /// Whether a verification record counts: always where no key is trusted; else only one
    /// signed by a trusted key (valid at the record's time) for this archive's name and the
    /// stored bytes its manifest records.
    pub fn record_counts(
        &self,
        name: &str,
        manifest: &Manifest,
        record: &VerifiedRecord,
        signed: Option<&Signed>,
    ) -> bool {
        let Some(set) = &self.0 else { return true };
        let Some(s) = signed else { return false };
        let verdict = set.verify(s.signed.as_bytes(), Some(&s.signature), record.time);
        matches!(verdict, Verdict::Trusted { .. })
            && record.archive.as_deref() == Some(name)
            && record.stored_sha256.as_deref() == Some(manifest.stored.sha256.as_str())
    }

    /// Judges the manifest of `name` (as stored under that name) and its signature parts.
    pub fn judge(&self, name: &str, manifest: &Manifest, signed: Option<&Signed>) -> Signature {
        let Some(set) = &self.0 else {
            return Signature::NotChecked {
                signed: signed.is_some(),
            };
        };
        let verdict = set.verify(
            signed.map(|s| s.signed.as_bytes()).unwrap_or_default(),
            signed.map(|s| s.signature.as_str()),
            manifest.pushed,
        );
        match verdict {
            Verdict::Untrusted { reason } => Signature::Untrusted {
                reason: reason.to_string(),
            },
            Verdict::Trusted { signer, .. } => match misplaced(name, manifest) {
                Some(why) => Signature::Untrusted { reason: why },
                None => Signature::Trusted { signer },
            },
        }
    }
}

/// Why a manifest signed for one archive is not this one's: a signature covers the name and
/// the data key, so a manifest copied under another name is refused here.
fn misplaced(name: &str, manifest: &Manifest) -> Option<String> {
    let object = manifest.stored.key.rsplit('/').next().unwrap_or_default();
    let expected = [name.to_string(), format!("{name}{AGE_SUFFIX}")];
    if manifest.archive != name {
        Some(format!(
            "its signed manifest is for another archive, {} (copied under this name)",
            manifest.archive
        ))
    } else if !expected.iter().any(|e| e == object) {
        Some(format!(
            "its signed manifest names the data object {object}, not {name}'s"
        ))
    } else {
        None
    }
}

/// The signature verdict of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Not judged: no trusted signers are configured (the archive counts as trusted), or there
    /// is no manifest to judge. `signed` says whether it carries a signature at all.
    NotChecked {
        /// Whether the manifest is signed.
        signed: bool,
    },
    /// Signed by a trusted key, within its validity, over these bytes, for this archive.
    Trusted {
        /// Its principals (allowed_signers) or comment (a public line).
        signer: String,
    },
    /// Not trusted.
    Untrusted {
        /// Why, in words (`unsigned`, `signed by a key that is not trusted (SHA256:...)`...).
        reason: String,
    },
}

impl Signature {
    /// The word `ls --json` reports: `trusted`, `untrusted`, `signed` or `unsigned` (the last
    /// two when nothing is checked).
    pub fn as_str(&self) -> &'static str {
        match self {
            Signature::NotChecked { signed: true } => "signed",
            Signature::NotChecked { signed: false } => "unsigned",
            Signature::Trusted { .. } => "trusted",
            Signature::Untrusted { .. } => "untrusted",
        }
    }

    /// Why it is untrusted, when it is.
    pub fn untrusted(&self) -> Option<&str> {
        match self {
            Signature::Untrusted { reason } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ManifestFile;
    use offsite_policies::signing::SigningKey;

    fn manifest(name: &str) -> Manifest {
        crate::archive::tests_support::sample(name)
    }

    fn signed(m: &Manifest, key: &SigningKey) -> Option<Signed> {
        ManifestFile::parse(&ManifestFile::signed_bytes(m, key))
            .unwrap()
            .signature
    }

    #[test]
    fn a_signature_binds_the_name_it_is_stored_under() {
        let key = SigningKey::generate("host-a");
        let signers =
            Signers::new(TrustedSigners::parse(&[key.public_line()], "test", None).unwrap());
        let a = manifest("app-20261126_020000.tgz");
        let sig = signed(&a, &key);
        assert_eq!(
            signers.judge("app-20261126_020000.tgz", &a, sig.as_ref()),
            Signature::Trusted {
                signer: "host-a".into()
            }
        );
        let moved = signers.judge("app-20261127_020000.tgz", &a, sig.as_ref());
        assert!(
            moved
                .untrusted()
                .is_some_and(|r| r.contains("for another archive")),
            "{moved:?}"
        );
        let unsigned = signers.judge("app-20261126_020000.tgz", &a, None);
        assert_eq!(unsigned.untrusted(), Some("unsigned"));
        let stranger = SigningKey::generate("mallory");
        let s = signers.judge(
            "app-20261126_020000.tgz",
            &a,
            signed(&a, &stranger).as_ref(),
        );
        assert!(
            s.untrusted().is_some_and(|r| r.contains("not trusted")),
            "{s:?}"
        );
    }

    #[test]
    fn a_record_counts_only_signed_for_its_copy() {
        use crate::archive::{RecordedDepth, RecordedResult, VerifiedRecord};
        let key = SigningKey::generate("host-a");
        let signers =
            Signers::new(TrustedSigners::parse(&[key.public_line()], "test", None).unwrap());
        let name = "app-20261126_020000.tgz";
        let m = manifest(name);
        let record = |archive: &str, sha: &str| VerifiedRecord {
            time: m.pushed,
            depth: RecordedDepth::Drill,
            result: RecordedResult::Ok,
            detail: None,
            tool: "offsite 0".into(),
            archive: Some(archive.into()),
            stored_sha256: Some(sha.into()),
            contents: None,
            restore: None,
        };
        let counts = |r: &VerifiedRecord, k: Option<&SigningKey>| {
            let (back, signed) = VerifiedRecord::parse(&r.to_bytes(k)).unwrap();
            assert_eq!(&back, r);
            signers.record_counts(name, &m, &back, signed.as_ref())
        };
        let good = record(name, &m.stored.sha256);
        assert!(counts(&good, Some(&key)));
        assert!(!counts(&good, None), "unsigned");
        assert!(!counts(&good, Some(&SigningKey::generate("mallory"))));
        assert!(!counts(&record("other", &m.stored.sha256), Some(&key)));
        assert!(!counts(&record(name, &"00".repeat(32)), Some(&key)));
        let (r, s) = VerifiedRecord::parse(&good.to_bytes(None)).unwrap();
        assert!(Signers::default().record_counts(name, &m, &r, s.as_ref()));
    }

    #[test]
    fn nothing_is_checked_without_trusted_keys() {
        let a = manifest("app-20261126_020000.tgz");
        let s = Signers::default().judge("other", &a, None);
        assert_eq!(s, Signature::NotChecked { signed: false });
        assert_eq!(s.as_str(), "unsigned");
        assert!(!Signers::new(TrustedSigners::default()).configured());
    }
}
