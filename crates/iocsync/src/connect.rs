//! Turning a configured tenant into a Defender client: reading the credential (env var or an
//! owner-only file), choosing the cloud, and starting the embedded emulator when asked.

use crate::config::{CloudName, Config, CredentialSpec, Tenant};
use anyhow::{Context, bail};
use iocsync_defender::{ClientConfig, Cloud, Credential, DefenderClient};
use secrecy::SecretString;
use std::path::Path;

/// A live client, plus the embedded emulator serving it when the tenant has `emulator = true`.
#[derive(Debug)]
pub struct Connection {
    /// The Defender client.
    pub client: DefenderClient,
    /// The embedded emulator, shut down (and its state saved) by [`Connection::close`].
    pub emulator: Option<iocsync_emulator::Emulator>,
}

impl Connection {
    /// Ends the connection: stops the embedded emulator, which saves its state file.
    pub async fn close(self) {
        if let Some(e) = self.emulator {
            e.shutdown().await;
        }
    }
}

/// Opens a connection to one tenant.
pub async fn connect(config: &Config, tenant: &Tenant) -> anyhow::Result<Connection> {
    let mut client_config = ClientConfig::new(
        tenant.tenant_id.clone(),
        tenant.client_id.clone(),
        credential(&tenant.credential)?,
        cloud(tenant.cloud),
    );
    client_config.api_base = tenant.api_base.clone();
    client_config.authority = tenant.authority.clone();
    client_config.scope = tenant.scope.clone();
    if tenant.time_scale > 1.0 {
        let s = tenant.time_scale;
        client_config.limits = iocsync_defender::PacingLimits::documented().scaled(s);
        let r = &mut client_config.retry;
        r.initial_backoff = r.initial_backoff.div_f64(s);
        r.max_backoff = r.max_backoff.div_f64(s);
        r.max_elapsed = r.max_elapsed.div_f64(s).max(std::time::Duration::from_secs(10));
        r.max_retry_after = r.max_retry_after.div_f64(s).max(std::time::Duration::from_secs(2));
    }
    let mut emulator = None;
    if tenant.emulator {
        let state_file = emulator_state_file(config, tenant);
        if let Some(dir) = state_file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state directory {}", dir.display()))?;
        }
        let emu_config = iocsync_emulator::EmulatorConfig {
            tenant_id: tenant.tenant_id.clone(),
            state_file: Some(state_file),
            behaviour: emulator_profile()?,
            rate_limits: iocsync_emulator::RateLimits::documented().scaled(tenant.time_scale),
            ..iocsync_emulator::EmulatorConfig::default()
        };
        let emu = iocsync_emulator::start(emu_config).await.context("starting the embedded emulator")?;
        tracing::info!(url = %emu.base_url(), "embedded Defender emulator started (emulator = true)");
        client_config.api_base = Some(emu.base_url());
        client_config.authority = Some(emu.base_url());
        emulator = Some(emu);
    }
    let client = DefenderClient::new(client_config).context("building the Defender client")?;
    Ok(Connection { client, emulator })
}

/// Where the embedded emulator of a tenant keeps its indicators: beside the state database.
pub fn emulator_state_file(config: &Config, tenant: &Tenant) -> std::path::PathBuf {
    let db = &config.sync.state;
    let stem = db.file_stem().and_then(|s| s.to_str()).unwrap_or("iocsync");
    db.with_file_name(format!("{stem}-emulator-{}.json", tenant.name))
}

pub(crate) fn cloud(c: CloudName) -> Cloud {
    match c {
        CloudName::Commercial => Cloud::Commercial,
        CloudName::Gcc => Cloud::Gcc,
        CloudName::GccHigh => Cloud::GccHigh,
        CloudName::Dod => Cloud::Dod,
    }
}

/// Reads the credential a tenant names. Error messages name the variable or file, never the secret.
pub fn credential(spec: &CredentialSpec) -> anyhow::Result<Credential> {
    match spec {
        CredentialSpec::Emulator => {
            Ok(Credential::Secret(SecretString::from(iocsync_emulator::DEFAULT_CLIENT_SECRET.to_owned())))
        }
        CredentialSpec::SecretEnv(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Credential::Secret(SecretString::from(v.trim().to_owned()))),
            Ok(_) => bail!("environment variable {var} is empty: it must hold the app's client secret"),
            Err(_) => bail!("environment variable {var} is not set: export it with the app's client secret"),
        },
        CredentialSpec::SecretFile(path) => {
            let text = read_private_file(path)?;
            let secret = text.trim();
            if secret.is_empty() {
                bail!("secret file {} is empty", path.display());
            }
            Ok(Credential::Secret(SecretString::from(secret.to_owned())))
        }
        CredentialSpec::SecretCredential(name) => {
            // systemd keeps credentials on a private, non-swappable file system readable only
            // by the service, so the owner-only mode check of `file` does not apply.
            let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
                bail!(
                    "client_secret = {{ credential = \"{name}\" }} needs $CREDENTIALS_DIRECTORY: run iocsync from a systemd unit with LoadCredential={name}:/path/to/secret"
                );
            };
            let path = Path::new(&dir).join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read systemd credential {name} ({})", path.display()))?;
            let secret = text.trim();
            if secret.is_empty() {
                bail!("systemd credential {name} is empty");
            }
            Ok(Credential::Secret(SecretString::from(secret.to_owned())))
        }
        CredentialSpec::Certificate { key_file, cert_file, thumbprint, algorithm } => {
            let key = read_private_file(key_file)?;
            let (sha1, sha256) = match (cert_file, thumbprint) {
                (_, Some(t)) if t.len() == 64 => (None, Some(t.to_ascii_lowercase())),
                (_, Some(t)) => (Some(t.to_ascii_lowercase()), None),
                (Some(cert), None) => {
                    let pem = std::fs::read_to_string(cert)
                        .with_context(|| format!("reading certificate {}", cert.display()))?;
                    let t = iocsync_defender::certificate_thumbprints(&pem).with_context(|| {
                        format!("certificate {} is not a PEM certificate", cert.display())
                    })?;
                    (Some(t.sha1), Some(t.sha256))
                }
                (None, None) => bail!("client_certificate needs cert_file or thumbprint"),
            };
            Ok(Credential::Certificate {
                private_key_pem: SecretString::from(key),
                thumbprint_sha1_hex: sha1,
                thumbprint_sha256_hex: sha256,
                algorithm: *algorithm,
            })
        }
    }
}

/// Reads a file holding a secret, refusing one that its group or others may read.
fn read_private_file(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read secret file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "secret file {} is readable by group or others (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::read_to_string(path).with_context(|| format!("cannot read secret file {}", path.display()))
}

/// The embedded emulator's behaviour: `IOCSYNC_EMULATOR_PROFILE=strict` turns on every
/// real-service behaviour the spec marks UNCERTAIN at its most hostile setting.
pub fn emulator_profile() -> anyhow::Result<iocsync_emulator::Behaviour> {
    let name = std::env::var("IOCSYNC_EMULATOR_PROFILE").unwrap_or_default();
    iocsync_emulator::Behaviour::profile(&name).ok_or_else(|| {
        anyhow::anyhow!("IOCSYNC_EMULATOR_PROFILE={name}: unknown profile (expected default or strict)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_group_readable_secret_file_is_refused_without_echoing_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = credential(&CredentialSpec::SecretFile(path.clone())).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(credential(&CredentialSpec::SecretFile(path)).unwrap(), Credential::Secret(_)));
    }

    #[test]
    fn a_missing_env_var_is_named() {
        let err = credential(&CredentialSpec::SecretEnv("IOCSYNC_TEST_UNSET_VARIABLE_X".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("IOCSYNC_TEST_UNSET_VARIABLE_X"), "{err}");
    }
}
