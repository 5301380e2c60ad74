//! The local users file (`[console] auth = "local"`): names, roles and argon2id password
//! hashes in PHC form. Read at every login, so `iocsync console add-user` needs no restart.

use crate::config::Role;
use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::path::Path;

/// One console user as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name (shown in the journal and the audit log).
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// argon2id hash in PHC string form; never the password.
    pub password_hash: String,
}

/// The users file.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Every user.
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

/// The shortest password `add-user` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

impl UsersFile {
    /// Reads the file; a missing file is an empty one (nobody can log in yet).
    pub fn load(path: &Path) -> anyhow::Result<UsersFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("the console users file {} is not valid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading the console users file {}", path.display())),
        }
    }

    /// Writes the file with mode 0600 (it holds password hashes), replacing it atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::create_private_dir_all(dir)?;
        }
        let tmp = path.with_extension("toml.tmp");
        let text = toml::to_string(self).context("serialising the users file")?;
        let mut f = crate::fsutil::private_options()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(b"# iocsync console users: written by `iocsync console add-user`; argon2id hashes\n")?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    /// Adds a user, or replaces the role and password of an existing one.
    pub fn upsert(&mut self, name: &str, role: Role, password: &str) -> anyhow::Result<()> {
        let name = name.trim();
        if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            anyhow::bail!("a user name is 1 to 128 characters without spaces or control characters");
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            anyhow::bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters");
        }
        let entry = UserEntry { name: name.to_owned(), role, password_hash: hash_password(password)? };
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(u) => *u = entry,
            None => self.users.push(entry),
        }
        Ok(())
    }

    /// The user named `name` if `password` is theirs. An unknown name costs the same hashing
    /// work as a known one, so timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<&UserEntry> {
        match self.users.iter().find(|u| u.name == name) {
            Some(u) if verify_password(&u.password_hash, password) => Some(u),
            Some(_) => None,
            None => {
                let _ = verify_password(dummy_hash(), password);
                None
            }
        }
    }
}

/// Hashes a password with argon2id (the crate's default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("password salt: {e}"))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC `hash` (a malformed hash matches nothing).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password, only for timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_never_hold_the_password() {
        let mut f = UsersFile::default();
        f.upsert("alice", Role::Analyst, "correct horse battery").unwrap();
        let text = toml::to_string(&f).unwrap();
        assert!(!text.contains("correct horse"), "{text}");
        assert!(text.contains("$argon2id$"), "{text}");
        assert!(f.verify("alice", "correct horse battery").is_some());
        assert!(f.verify("alice", "wrong horse battery").is_none());
        assert!(f.verify("bob", "correct horse battery").is_none());
        assert!(f.upsert("bob", Role::Viewer, "short").is_err());
        assert!(f.upsert("b ob", Role::Viewer, "long enough password").is_err());
    }
}
