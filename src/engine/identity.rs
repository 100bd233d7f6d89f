//! age identities for restore and deep verify: `--identity FILE` or `OFFSITE_IDENTITY_FILE`.

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

impl Identities {
    /// Loads an identity file: age `AGE-SECRET-KEY-1...` lines (comments allowed) or an
    /// unencrypted OpenSSH private key. Warns when others can read the file.
    pub fn load(path: &Path) -> Result<Identities> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read identity file {}; check the path given with --identity or OFFSITE_IDENTITY_FILE", path.display())
        })?;
        warn_if_exposed(path);
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

    /// For age's decryptor.
    pub fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity)
    }
}

fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::metadata(path) {
        let mode = md.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: identity file {} is readable by others (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}
