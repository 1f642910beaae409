//! The split of the 48 bytes exported from a (D)TLS session (TS-0003 10.3.1) into a
//! 32-byte key (Ke, Kc) and its 16-byte identifier (RelativeKeID, KcID).
//!
//! The text gives the key "the 32 least significant bytes" and the identifier "the 16
//! most significant bytes" without saying how an octet string is read as a number.
//! Bastion reads it big-endian, as RFC 5705 output is conventionally read: the identifier
//! is bytes 0..16 and the key bytes 16..48 (docs/decisions.md, "Issue 15").

use zeroize::Zeroizing;

use crate::derive::EnrolmentKey;
use crate::hex;
use crate::identifier::{IdentifierError, KeyIdentifier};

/// Length of the exporter output for every oneM2M label (10.3.1).
pub const EXPORT_LEN: usize = 48;
/// Length of the key identifier part.
pub const KEY_ID_LEN: usize = 16;

/// The exporter output had another length than [`EXPORT_LEN`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("exported keying material must be {EXPORT_LEN} bytes, got {0}")]
pub struct ExportLengthError(pub usize);

/// A 48-byte export split into key identifier and key; the key is wiped on drop and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct ExportedKey {
    key_id: [u8; KEY_ID_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKey")
            .field("key_id", &hex::encode(&self.key_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ExportedKey {
    /// Splits exactly [`EXPORT_LEN`] bytes: identifier first, key after.
    pub fn split(out: &[u8]) -> Result<ExportedKey, ExportLengthError> {
        if out.len() != EXPORT_LEN {
            return Err(ExportLengthError(out.len()));
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&out[..KEY_ID_LEN]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&out[KEY_ID_LEN..]);
        Ok(ExportedKey { key_id, key })
    }

    /// The 16-byte key identifier (RelativeKeID / KcID).
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }

    /// The 32-byte key (Ke / Kc).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// `hexBinary(key id)@fqdn` (KeID 10.3.4 with the MEF's FQDN, key identifier 10.3.5
    /// with the MAF's).
    pub fn key_identifier(&self, fqdn: &str) -> Result<KeyIdentifier, IdentifierError> {
        KeyIdentifier::from_binary_id(&self.key_id, fqdn)
    }

    /// The key as an enrolment key Ke, for an export with the bootstrap label.
    pub fn enrolment_key(&self) -> EnrolmentKey {
        EnrolmentKey::from_array(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_id_first_then_key() {
        let out: Vec<u8> = (0u8..48).collect();
        let k = ExportedKey::split(&out).unwrap();
        assert_eq!(k.key_id()[0], 0);
        assert_eq!(k.key_id()[15], 15);
        assert_eq!(k.key()[0], 16);
        assert_eq!(k.key()[31], 47);
        assert_eq!(
            k.key_identifier("maf.example.com").unwrap().to_string(),
            "000102030405060708090a0b0c0d0e0f@maf.example.com"
        );
        assert!(!format!("{k:?}").contains("101112"), "key shown by Debug");
    }

    #[test]
    fn other_lengths_are_refused() {
        assert_eq!(
            ExportedKey::split(&[0u8; 47]).unwrap_err(),
            ExportLengthError(47)
        );
        assert_eq!(
            ExportedKey::split(&[0u8; 49]).unwrap_err(),
            ExportLengthError(49)
        );
    }
}
