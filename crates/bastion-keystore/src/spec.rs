//! Where a key store is, as operators write it: `file:PATH` (the encrypted file store)
//! or `pkcs11:MODULE?token=LABEL[&level=N]` (a token of a PKCS#11 module), and the
//! secrets that open it: the file store's key (`BASTION_CREDENTIALS_KEY` or a key file,
//! as for the credential store) or the token's user PIN (a PIN file or
//! `BASTION_PKCS11_PIN`; never a command-line value, which other local users can read).

use std::fmt;
use std::path::{Path, PathBuf};

use bastion_tls::StoreKey;
use zeroize::Zeroizing;

use crate::{FileKeyStore, KeyStore, KeyStoreError, Pkcs11KeyStore, ProtectionLevel};

/// The environment variable a token's user PIN is read from when no PIN file is given.
pub const PIN_ENV: &str = "BASTION_PKCS11_PIN";

/// A key store's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `file:PATH`.
    File(PathBuf),
    /// `pkcs11:MODULE?token=LABEL[&level=N]`.
    Pkcs11 {
        /// The module (shared library) path.
        module: PathBuf,
        /// The token's label.
        token: String,
        /// The protection level the operator declares for the device.
        level: Option<ProtectionLevel>,
    },
}

impl StoreSpec {
    /// Parses a location; anything else than the two forms is refused.
    pub fn parse(text: &str) -> Result<StoreSpec, KeyStoreError> {
        let bad = || KeyStoreError::InvalidSpec(text.to_owned());
        if let Some(path) = text.strip_prefix("file:") {
            return match path.is_empty() {
                true => Err(bad()),
                false => Ok(StoreSpec::File(PathBuf::from(path))),
            };
        }
        let rest = text.strip_prefix("pkcs11:").ok_or_else(bad)?;
        let (module, query) = rest.split_once('?').ok_or_else(bad)?;
        let (mut token, mut level) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("token", value)) if !value.is_empty() && token.is_none() => {
                    token = Some(value.to_owned())
                }
                Some(("level", value)) if level.is_none() => {
                    let number = value.parse::<u8>().map_err(|_| bad())?;
                    level = Some(ProtectionLevel::from_number(number).ok_or_else(bad)?);
                }
                _ => return Err(bad()),
            }
        }
        match (module.is_empty(), token) {
            (false, Some(token)) => Ok(StoreSpec::Pkcs11 {
                module: PathBuf::from(module),
                token,
                level,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::File(path) => write!(f, "file:{}", path.display()),
            StoreSpec::Pkcs11 {
                module,
                token,
                level,
            } => {
                write!(f, "pkcs11:{}?token={token}", module.display())?;
                match level {
                    Some(level) => write!(f, "&level={}", level.number()),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Where the secrets that open a store come from, besides the environment.
#[derive(Debug, Clone, Default)]
pub struct StoreSecrets {
    /// The file store's key file (else `BASTION_CREDENTIALS_KEY`, which wins when set).
    pub key_file: Option<PathBuf>,
    /// A file holding the token's user PIN (else `BASTION_PKCS11_PIN`).
    pub pin_file: Option<PathBuf>,
}

impl StoreSecrets {
    fn store_key(&self) -> Result<StoreKey, KeyStoreError> {
        StoreKey::from_env_or_file(self.key_file.as_deref())
            .map_err(|e| KeyStoreError::Unlock(e.to_string()))
    }

    fn pin(&self) -> Result<Zeroizing<String>, KeyStoreError> {
        let pin = match &self.pin_file {
            Some(path) => {
                let text = bastion_tls::secret::read_secret_text(path)
                    .map_err(|e| KeyStoreError::Unlock(e.to_string()))?;
                Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            None => Zeroizing::new(std::env::var(PIN_ENV).map_err(|_| {
                KeyStoreError::Unlock(format!("no PKCS#11 PIN: give a PIN file or set {PIN_ENV}"))
            })?),
        };
        match pin.is_empty() {
            true => Err(KeyStoreError::Unlock("the PKCS#11 PIN is empty".to_owned())),
            false => Ok(pin),
        }
    }
}

/// Opens the store at `spec`: an existing file store, or a token logged in as its user.
pub fn open(spec: &StoreSpec, secrets: &StoreSecrets) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    match spec {
        StoreSpec::File(path) => Ok(Box::new(FileKeyStore::open(path, secrets.store_key()?)?)),
        StoreSpec::Pkcs11 {
            module,
            token,
            level,
        } => open_pkcs11(module, token, *level, secrets),
    }
}

/// Creates an empty file store at `spec` (an existing file is refused); a token, which
/// its own tools initialise, is opened to check the PIN and the declared level.
pub fn create(
    spec: &StoreSpec,
    secrets: &StoreSecrets,
) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    match spec {
        StoreSpec::File(path) => Ok(Box::new(FileKeyStore::create(path, secrets.store_key()?)?)),
        StoreSpec::Pkcs11 { .. } => open(spec, secrets),
    }
}

fn open_pkcs11(
    module: &Path,
    token: &str,
    level: Option<ProtectionLevel>,
    secrets: &StoreSecrets,
) -> Result<Box<dyn KeyStore>, KeyStoreError> {
    let pin = secrets.pin()?;
    Ok(Box::new(Pkcs11KeyStore::open(module, token, &pin, level)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_forms_parse_and_print_back() {
        for text in [
            "file:/var/lib/bastion/keys.store",
            "pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=bastion",
            "pkcs11:/usr/lib/x.so?token=t&level=2",
        ] {
            assert_eq!(StoreSpec::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            StoreSpec::parse("pkcs11:/m.so?level=3&token=t").unwrap(),
            StoreSpec::Pkcs11 {
                module: "/m.so".into(),
                token: "t".to_owned(),
                level: Some(ProtectionLevel::TamperResistant),
            }
        );
    }

    #[test]
    fn other_forms_are_refused() {
        for text in [
            "",
            "file:",
            "/tmp/keys",
            "pkcs11:/m.so",
            "pkcs11:?token=t",
            "pkcs11:/m.so?token=",
            "pkcs11:/m.so?token=t&level=4",
            "pkcs11:/m.so?token=t&pin=1234",
            "pkcs11:/m.so?token=t&token=u",
        ] {
            let err = StoreSpec::parse(text).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid key store {text:?}: expected file:PATH or pkcs11:MODULE?token=LABEL[&level=N]")
            );
        }
    }
}
