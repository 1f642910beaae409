//! Enrolment profiles: the RA's list of who may enrol and as what (TS-0003 8.3.6, the MEF
//! as registration authority). A TOML file of `[[enrolee]]` tables, read at start:
//!
//! ```toml
//! [[enrolee]]
//! # the originator the enrolee's association is bound to: the identity of its bootstrap
//! # certificate, or what the credential store binds its PSK identity to
//! authenticated-as = "//factory.example/Sdevice7"
//! # the AE-ID or CSE-ID its certificate will name (default: authenticated-as)
//! certify = "//bastion.example/id-in/Cdevice7"
//! # demand this challengePassword in the CSR (a file, mode 0600; optional)
//! challenge-password-file = "device7.pw"
//! validity-days = 30   # optional, else the server's default
//! ```
//!
//! An enrolee without a profile is refused (fail closed). Challenge passwords are held
//! as their SHA-256 digest and compared in constant time.

use std::collections::HashMap;
use std::path::Path;

use openssl::hash::{hash, MessageDigest};
use serde::Deserialize;

/// A profile file that cannot be used (operator's fault).
#[derive(Debug, thiserror::Error)]
#[error("enrolment profiles {path}: {reason}")]
pub struct ProfileError {
    path: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    enrolee: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    authenticated_as: String,
    certify: Option<String>,
    challenge_password_file: Option<String>,
    validity_days: Option<u32>,
}

/// What one enrolee may get.
#[derive(Clone)]
pub struct Profile {
    /// The absolute AE-ID or CSE-ID its certificate names.
    pub certify: String,
    /// SHA-256 of the challengePassword the CSR must carry, if any.
    challenge_digest: Option<[u8; 32]>,
    /// Validity of its certificates, days; `None`: the server's default.
    pub validity_days: Option<u32>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("certify", &self.certify)
            .field(
                "challenge_password",
                &self.challenge_digest.map(|_| "<redacted>"),
            )
            .field("validity_days", &self.validity_days)
            .finish()
    }
}

fn digest(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = hash(MessageDigest::sha256(), text.as_bytes()) {
        out.copy_from_slice(&d);
    }
    out
}

impl Profile {
    /// A profile certifying `certify`, demanding `challenge_password` when given.
    pub fn new(
        certify: &str,
        challenge_password: Option<&str>,
        validity_days: Option<u32>,
    ) -> Self {
        Self {
            certify: certify.to_owned(),
            challenge_digest: challenge_password.map(digest),
            validity_days,
        }
    }

    /// Whether the CSR must carry a challengePassword.
    pub fn demands_password(&self) -> bool {
        self.challenge_digest.is_some()
    }

    /// Whether `presented` is the profile's password, in constant time (digests of equal
    /// length compared with OpenSSL's `CRYPTO_memcmp`).
    pub fn password_matches(&self, presented: &str) -> bool {
        match &self.challenge_digest {
            Some(expected) => openssl::memcmp::eq(expected, &digest(presented)),
            None => false,
        }
    }
}

/// What an association is looked up by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileKey {
    /// The originator the association is bound to (a profile file's `authenticated-as`).
    #[default]
    Originator,
    /// The PSK identity of a PSK association (a KpmID), the originator of a certificate
    /// association: how the MEF names its enrolees' credentials, so the MEF's profiles
    /// hold whatever its credential store binds a Kpm to.
    Credential,
}

/// Every profile, by the originator (or credential) an enrolee's association is bound to.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    by_originator: HashMap<String, Profile>,
    key: ProfileKey,
}

impl Profiles {
    /// Profiles from explicit entries (tests, embedding in the MEF), keyed by originator.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Profile)>) -> Self {
        Self::from_entries_by(ProfileKey::Originator, entries)
    }

    /// Profiles from explicit entries keyed as `key` says.
    pub fn from_entries_by(
        key: ProfileKey,
        entries: impl IntoIterator<Item = (String, Profile)>,
    ) -> Self {
        Self {
            by_originator: entries.into_iter().collect(),
            key,
        }
    }

    /// The name `peer` is looked up by.
    pub fn key_of<'a>(&self, peer: &'a bastion_tls::PeerIdentity) -> &'a str {
        match (self.key, peer.framework()) {
            (ProfileKey::Credential, bastion_tls::Framework::Psk) => peer.credential(),
            _ => peer.originator(),
        }
    }

    /// The profile of the enrolee at the other end of `peer`.
    pub fn for_peer(&self, peer: &bastion_tls::PeerIdentity) -> Option<&Profile> {
        self.by_originator.get(self.key_of(peer))
    }

    /// Reads a profile file; `challenge-password-file` paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let fail = |reason: String| ProfileError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: File = toml::from_str(&text).map_err(|e| fail(e.message().to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut by_originator = HashMap::new();
        for entry in file.enrolee {
            let certify = entry
                .certify
                .unwrap_or_else(|| entry.authenticated_as.clone());
            if bastion_tls::identity::binding_from_san_uri(&certify).is_none() {
                return Err(fail(format!(
                    "certify {certify:?} is not an absolute AE-ID or CSE-ID"
                )));
            }
            if entry.validity_days == Some(0) {
                return Err(fail("validity-days must be at least 1".into()));
            }
            let password = match &entry.challenge_password_file {
                Some(file) => {
                    let secret = bastion_tls::secret::read_secret_text(&base.join(file))
                        .map_err(|e| fail(e.to_string()))?;
                    let trimmed = secret.trim_end_matches(['\n', '\r']);
                    if trimmed.is_empty() {
                        return Err(fail(format!("{file}: empty challenge password")));
                    }
                    Some(digest(trimmed))
                }
                None => None,
            };
            let profile = Profile {
                certify,
                challenge_digest: password,
                validity_days: entry.validity_days,
            };
            if by_originator
                .insert(entry.authenticated_as.clone(), profile)
                .is_some()
            {
                return Err(fail(format!(
                    "two profiles for {:?}",
                    entry.authenticated_as
                )));
            }
        }
        Ok(Self {
            by_originator,
            key: ProfileKey::Originator,
        })
    }

    /// The profile of the enrolee whose association is bound to `originator`.
    pub fn for_originator(&self, originator: &str) -> Option<&Profile> {
        self.by_originator.get(originator)
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.by_originator.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_originator.is_empty()
    }
}
