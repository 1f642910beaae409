//! `bastion credentials add|list|revoke`: the operator's view of the encrypted credential
//! store of the TLS listener (`bastion_tls::CredentialRegistry`, docs/security.md).
//!
//! The store is `<data-dir>/credentials.store` unless `--store` names it; its key comes
//! from `BASTION_CREDENTIALS_KEY` or `--key-file`. These commands do not take the data
//! directory lock: the store is replaced atomically and a running server picks changes
//! up with `reload_if_changed`. Output names credentials, bindings and states, never keys.

use crate::cli::{
    CredentialsAddArgs, CredentialsAddHttpPeerArgs, CredentialsRevokeArgs, StoreArgs,
};
use crate::settings::DEFAULT_CREDENTIALS_STORE;
use crate::Failure;
use bastion_tls::{
    Binding, CredentialError, CredentialInfo, CredentialKind, CredentialRegistry, PskKey, StoreKey,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The store file named by the arguments.
fn store_path(args: &StoreArgs) -> Result<PathBuf, Failure> {
    match (&args.store, &args.data_dir) {
        (Some(file), _) => Ok(file.clone()),
        (None, Some(dir)) => Ok(dir.join(DEFAULT_CREDENTIALS_STORE)),
        (None, None) => Err(Failure::Config("give --data-dir or --store".to_owned())),
    }
}

fn open(args: &StoreArgs) -> Result<Arc<CredentialRegistry>, Failure> {
    let path = store_path(args)?;
    let key = StoreKey::from_env_or_file(args.key_file.as_deref())
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    }
    CredentialRegistry::open(&path, key).map_err(|e| Failure::Runtime(e.to_string()))
}

/// One line per credential: `ID  KIND  BINDING  STATE`.
fn line(info: &CredentialInfo) -> String {
    let kind = match info.kind {
        CredentialKind::Psk => "psk",
        CredentialKind::RawPublicKey => "raw-public-key",
        CredentialKind::HttpPeer => "http-peer",
    };
    let binding = match &info.binding {
        Binding::Ae(id) => format!("ae {id}"),
        Binding::Cse(id) => format!("cse {id}"),
        Binding::CredentialId(id) => format!("credential-id {id}"),
    };
    let state = if info.revoked { "revoked" } else { "active" };
    format!("{}\t{kind}\t{binding}\t{state}\n", info.credential)
}

/// `credentials add`: prints the added credential's line.
pub fn add(args: &CredentialsAddArgs) -> Result<String, Failure> {
    let key = psk_key(args.psk_file.as_deref())?;
    let binding = match (&args.originator, &args.cse_id) {
        (Some(ae), _) => Some(Binding::ae(ae).map_err(|e| Failure::Config(e.to_string()))?),
        (None, Some(cse)) => Some(Binding::cse(cse).map_err(|e| Failure::Config(e.to_string()))?),
        (None, None) => None,
    };
    let registry = open(&args.store)?;
    let info = registry
        .add_psk(&args.id, key, binding)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(format!("added {}", line(&info)))
}

/// `credentials add-http-peer`: prints the added credential's line (never the secret).
pub fn add_http_peer(args: &CredentialsAddHttpPeerArgs) -> Result<String, Failure> {
    let secret = http_secret(args.secret_file.as_deref())?;
    let binding = Binding::cse(&args.cse_id).map_err(|e| Failure::Config(e.to_string()))?;
    let registry = open(&args.store)?;
    let info = registry
        .add_http_peer(&args.user, secret, binding)
        .map_err(|e| match e {
            CredentialError::InvalidHttpUser(_) => Failure::Config(e.to_string()),
            other => Failure::Runtime(other.to_string()),
        })?;
    Ok(format!("added {}", line(&info)))
}

/// The environment variable an HTTP peer secret may be given in.
pub const HTTP_SECRET_ENV: &str = "BASTION_HTTP_SECRET";

/// An HTTP peer secret from the file given, else `BASTION_HTTP_SECRET`: 16 to 64
/// characters of the RFC 6750 token alphabet, so it works as a Basic password and as a
/// Bearer token alike.
fn http_secret(file: Option<&std::path::Path>) -> Result<PskKey, Failure> {
    let text = match file {
        Some(path) => bastion_tls::secret::read_secret_text(path)
            .map_err(|e| Failure::Config(e.to_string()))?,
        None => zeroize::Zeroizing::new(std::env::var(HTTP_SECRET_ENV).map_err(|_| {
            Failure::Config(format!(
                "no secret: give --secret-file FILE or set {HTTP_SECRET_ENV}"
            ))
        })?),
    };
    let text = text.trim();
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if !(16..=64).contains(&text.len()) || !text.bytes().all(token_char) {
        return Err(Failure::Config(
            "the secret must be 16 to 64 characters of A-Z a-z 0-9 - . _ ~ + / =".to_owned(),
        ));
    }
    PskKey::new(text.as_bytes()).map_err(|e| Failure::Config(e.to_string()))
}

/// `credentials list`.
pub fn list(args: &StoreArgs) -> Result<String, Failure> {
    let registry = open(args)?;
    Ok(registry.list().iter().map(line).collect())
}

/// `credentials revoke`.
pub fn revoke(args: &CredentialsRevokeArgs) -> Result<String, Failure> {
    let registry = open(&args.store)?;
    let info = registry
        .revoke(&args.id)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(format!("revoked {}", line(&info)))
}

/// Where a command takes a Kpsa from: the secret file given, else `BASTION_PSK_HEX`.
/// Never from a command-line value (other local users can read command lines).
pub fn psk_key(file: Option<&std::path::Path>) -> Result<PskKey, Failure> {
    let key = match file {
        Some(path) => PskKey::from_file(path).map(Some),
        None => PskKey::from_env(PSK_ENV),
    };
    match key {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(Failure::Config(format!(
            "no pre-shared key: give --psk-file FILE or set {PSK_ENV}"
        ))),
        Err(e) => Err(Failure::Config(e.to_string())),
    }
}

/// The environment variable a Kpsa may be given in (hex).
pub const PSK_ENV: &str = "BASTION_PSK_HEX";
