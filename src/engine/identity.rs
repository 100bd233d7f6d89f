//! age identities for restore and deep verify: `--identity FILE` or `OFFSITE_IDENTITY_FILE`.
//! Read in two steps, [`IdentityFile::read`] then [`IdentityFile::parse`], so that the caller can
//! show the warning about a file others can read before a parse error.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// The identities of one file, with what can be said about them in messages (public keys only).
pub struct Identities {
    /// The file they came from.
    pub path: PathBuf,
    /// For age.
    pub keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Their public keys (or a description, for SSH keys), for error messages.
    pub publics: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("Identities")
            .field("path", &self.path)
            .field("publics", &self.publics)
            .finish_non_exhaustive()
    }
}

/// An identity file as read from disk, before its keys are parsed: the warning about who else
/// can read it comes first, whether or not the keys then parse.
pub struct IdentityFile {
    path: PathBuf,
    text: String,
    /// "identity file ... is readable by others ...", when it is: the caller shows it.
    pub warning: Option<String>,
}

impl std::fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text: it holds the secret keys.
        f.debug_struct("IdentityFile")
            .field("path", &self.path)
            .field("warning", &self.warning)
            .finish_non_exhaustive()
    }
}

/// Whether an identity "path" is a secret key pasted in its place (any case): `AGE-SECRET-KEY-1...`,
/// a plugin identity, or a PEM private key.
fn pasted_key(path: &Path) -> bool {
    let upper = path.as_os_str().to_string_lossy().to_ascii_uppercase();
    upper.contains("AGE-SECRET-KEY-")
        || upper.contains("AGE-PLUGIN-")
        || upper.contains("-----BEGIN")
}

impl IdentityFile {
    /// Reads an identity file, and notes when others can read it.
    pub fn read(path: &Path) -> Result<IdentityFile> {
        if pasted_key(path) {
            bail!(
                "--identity was given a key itself, not the file that holds it (refused, and not shown here): put the key in a file only you can read (umask 077; offsite keygen -o FILE makes one) and give -i FILE or OFFSITE_IDENTITY_FILE=FILE; a key typed on a command line can stay in shell history and be seen in the process list, so consider replacing it"
            );
        }
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read identity file {}; check the path given with --identity or OFFSITE_IDENTITY_FILE", path.display())
        })?;
        Ok(IdentityFile {
            path: path.to_path_buf(),
            text,
            warning: exposure(path),
        })
    }

    /// The identities it holds: age `AGE-SECRET-KEY-1...` lines (comments allowed) or an
    /// unencrypted OpenSSH private key.
    pub fn parse(self) -> Result<Identities> {
        let IdentityFile { path, text, .. } = self;
        let path = path.as_path();
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        let mut publics = Vec::new();
        if text.contains("-----BEGIN") {
            let id = age::ssh::Identity::from_buffer(
                BufReader::new(text.as_bytes()),
                Some(path.display().to_string()),
            )
            .with_context(|| {
                format!(
                    "identity file {} holds an SSH key offsite cannot read",
                    path.display()
                )
            })?;
            match id {
                age::ssh::Identity::Unencrypted(_) => {}
                age::ssh::Identity::Encrypted(_) => bail!(
                    "identity file {} is a passphrase-protected SSH key; unattended restores need an unencrypted key or an age identity (offsite keygen)",
                    path.display()
                ),
                age::ssh::Identity::Unsupported(k) => bail!("identity file {}: unsupported SSH key ({k:?})", path.display()),
            }
            keys.push(Box::new(id));
            publics.push(format!("the SSH key in {}", path.display()));
        } else {
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let id = age::x25519::Identity::from_str(line).map_err(|_| {
                    anyhow::anyhow!(
                        "identity file {} line {}: not an age identity (expected AGE-SECRET-KEY-1...); public keys (age1...) belong in --recipient, not --identity",
                        path.display(),
                        i + 1
                    )
                })?;
                publics.push(id.to_public().to_string());
                keys.push(Box::new(id));
            }
        }
        if keys.is_empty() {
            bail!("identity file {} holds no identity", path.display());
        }
        Ok(Identities {
            path: path.to_path_buf(),
            keys,
            publics,
        })
    }
}

impl Identities {
    /// For age's decryptor.
    pub fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity)
    }
}

/// The warning for an identity file others can read, without the "warning: " the CLI adds.
fn exposure(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "identity file {} is readable by others (mode {mode:04o}); run: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}
