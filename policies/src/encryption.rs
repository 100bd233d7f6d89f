//! age recipients: parsing keys given on the command line, in a policy or in a recipients file.
//!
//! Only public keys are handled here. Identities (secret keys) never appear in a policy.

use std::fmt;
use std::str::FromStr;

/// Why a recipient could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipientError {
    /// A key did not parse.
    #[error("{origin}: {key_excerpt:?} is not an age recipient: {why}; expected an `age1...` X25519 public key or an `ssh-ed25519 ...` / `ssh-rsa ...` public key line")]
    Invalid {
        /// Where the key came from (`--recipient`, `recipients.txt line 3`).
        origin: String,
        /// The first characters of what was given (public data, but kept short).
        key_excerpt: String,
        /// What the parser said.
        why: String,
    },
    /// A secret key was given where a public key belongs.
    #[error("{origin}: this is a secret key (an identity), not a recipient; give its public key instead (`age-keygen -y KEYFILE` or `offsite keygen` prints it) and keep the secret key out of command lines and policy files")]
    SecretKey {
        /// Where it came from.
        origin: String,
    },
    /// The recipients file could not be read.
    #[error("cannot read recipients file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The recipients file held no key.
    #[error("recipients file {path} holds no recipient (only blank lines and comments)")]
    EmptyFile {
        /// The file.
        path: String,
    },
}

/// One age recipient.
#[derive(Clone)]
pub enum Recipient {
    /// A native X25519 recipient, `age1...`.
    X25519(age::x25519::Recipient),
    /// An SSH public key (`ssh-ed25519` or `ssh-rsa`).
    Ssh(age::ssh::Recipient),
}

impl Recipient {
    /// Parses one key; `origin` says where it came from, for the error message.
    pub fn parse(s: &str, origin: &str) -> Result<Recipient, RecipientError> {
        let s = s.trim();
        // Case-blind: bech32 keys are valid in either case, so `age-secret-key-1...` is as much
        // a secret as its upper-case form (and plugin identities start `AGE-PLUGIN-`).
        let upper = s.to_ascii_uppercase();
        if upper.starts_with("AGE-SECRET-KEY-")
            || upper.starts_with("AGE-PLUGIN-")
            || upper.contains("PRIVATE KEY")
        {
            return Err(RecipientError::SecretKey {
                origin: origin.to_string(),
            });
        }
        let invalid = |why: String| RecipientError::Invalid {
            origin: origin.to_string(),
            key_excerpt: s.chars().take(24).collect(),
            why,
        };
        if s.starts_with("age1") {
            return age::x25519::Recipient::from_str(s)
                .map(Recipient::X25519)
                .map_err(|e| invalid(e.to_string()));
        }
        if s.starts_with("ssh-") {
            return age::ssh::Recipient::from_str(s)
                .map(Recipient::Ssh)
                .map_err(|e| invalid(ssh_words(e)));
        }
        Err(invalid("unknown key type".into()))
    }

    /// The key as age expects it.
    pub fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

/// Why age refused an SSH public key line, in words (its error has no `Display`).
fn ssh_words(e: age::ssh::ParseRecipientKeyError) -> String {
    use age::ssh::ParseRecipientKeyError as E;
    match e {
        // A cut or mistyped key of a supported type reads as "unsupported" to age.
        E::Unsupported(kind) if kind == "ssh-rsa" || kind == "ssh-ed25519" => ssh_words(E::Ignore),
        E::Ignore | E::Invalid(_) => {
            "not a whole SSH public key line (`ssh-ed25519 AAAA... [comment]` or `ssh-rsa AAAA... [comment]`, as in a .pub file)".into()
        }
        E::RsaModulusTooLarge => "the RSA key is larger than age supports (at most 4096 bits)".into(),
        E::RsaModulusTooSmall => "the RSA key is weaker than age accepts (at least 2048 bits)".into(),
        E::Unsupported(kind) => format!(
            "age cannot encrypt to {kind} keys; use an ssh-ed25519 or ssh-rsa key, or an age1... key"
        ),
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::X25519(r) => write!(f, "{r}"),
            Recipient::Ssh(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Parses the text of a recipients file: one key per line, `#` comments and blank lines ignored
/// (the format of `age -R`). `origin` names the file in errors (`recipients.txt line 3`); reading
/// the file is the caller's (the [`RecipientError::File`] error is theirs to build).
pub fn parse_recipients(text: &str, origin: &str) -> Result<Vec<Recipient>, RecipientError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(Recipient::parse(line, &format!("{origin} line {}", i + 1))?);
    }
    if out.is_empty() {
        return Err(RecipientError::EmptyFile {
            path: origin.to_string(),
        });
    }
    Ok(out)
}

/// Removes repeated recipients, keeping the first of each.
pub fn dedup(recipients: Vec<Recipient>) -> Vec<Recipient> {
    let mut seen = std::collections::HashSet::new();
    recipients
        .into_iter()
        .filter(|r| seen.insert(r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";

    #[test]
    fn parses_x25519_and_ssh() {
        let id = age::x25519::Identity::generate();
        let pk = id.to_public().to_string();
        assert_eq!(Recipient::parse(&pk, "test").unwrap().to_string(), pk);
        assert!(matches!(
            Recipient::parse(ED25519, "test").unwrap(),
            Recipient::Ssh(_)
        ));
    }

    #[test]
    fn errors_name_the_origin_and_the_fix() {
        let e = Recipient::parse("age1notakey", "--recipient")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--recipient: \"age1notakey\" is not an age recipient"),
            "{e}"
        );
        assert!(e.contains("expected an `age1...`"), "{e}");
        for secret in ["age-secret-key-1qqqsecret", "AGE-PLUGIN-YUBIKEY-1QQQSECRET"] {
            let e = Recipient::parse(secret, "-r").unwrap_err().to_string();
            assert!(e.contains("secret key"), "{e}");
            assert!(
                !e.to_lowercase().contains("qqqsecret"),
                "secret echoed: {e}"
            );
        }
        let e = Recipient::parse("AGE-SECRET-KEY-1QQQ", "policy")
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret key"), "{e}");
        assert!(!e.contains("QQQ"), "secret echoed: {e}");
    }

    #[test]
    fn recipients_file_skips_comments_and_reports_lines() {
        let pk = age::x25519::Identity::generate().to_public().to_string();
        let text = format!("# team keys\n\n{pk}\n{ED25519}\n");
        assert_eq!(parse_recipients(&text, "r.txt").unwrap().len(), 2);
        let e = parse_recipients(&format!("{pk}\nbogus\n"), "r.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.txt line 2"), "{e}");
        assert!(matches!(
            parse_recipients("# nothing\n", "r.txt"),
            Err(RecipientError::EmptyFile { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_as_a_recipient_never_panics_nor_echoes_a_secret(
            s in "(AGE-SECRET-KEY-1|age-secret-key-1|Age-Secret-Key-1|age1|ssh-ed25519 )?[A-Za-z0-9]{0,60}",
        ) {
            let secret = s.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-");
            match Recipient::parse(&s, "-r") {
                Err(e) if secret => {
                    let shown = e.to_string();
                    let tail = &s["age-secret-key-1".len()..];
                    proptest::prop_assert!(tail.len() < 4 || !shown.contains(tail), "{}", shown);
                }
                Ok(_) => proptest::prop_assert!(!secret),
                Err(_) => {}
            }
        }
    }
}
