//! HMAC-SHA-256 derivations from the enrolment key Ke (TS-0003 10.3.2, 10.3.3, 10.3.7):
//! `HMAC-SHA-256(Ke, label || inputs)` with the label and inputs concatenated with no
//! separator. Identities enter as UTF-8 after NFKC normalisation; Bastion accepts only
//! printable ASCII identities, for which NFKC changes nothing (docs/decisions.md,
//! "Issue 15"), so no normalisation table is needed and no identity is silently altered.
//!
//! The message MACed (label and inputs) is a [`DerivationInput`] of its own, so a key
//! store that keeps Ke where this process cannot read it (a PKCS#11 token) computes the
//! same HMAC inside and hands back the MAC ([`DerivedKey::from_mac`]); the labels and the
//! encoding of the inputs stay here.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::hex;
use crate::suid::Suid;

/// Label of the Km derivation (10.3.2).
pub const LABEL_KM: &str = "oneM2M Enrolment Key to Master Credential derivation";
/// Label of the Kpsa derivation (10.3.3).
pub const LABEL_KPSA: &str = "oneM2M Enrolment Key to Provisioned Secure Connection Key derivation";
/// Label of the Kuc derivation (10.3.7).
pub const LABEL_KUC: &str = "oneM2M Enrolment Key to Usage-Constrained Symmetric Key derivation";

/// Length of Ke and of every derived key (Ke is 32 bytes by 10.3.1; HMAC-SHA-256 output).
pub const KEY_LEN: usize = 32;

/// Why a derivation was refused. Never carries key bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Ke is not 32 bytes.
    #[error("the enrolment key Ke must be {KEY_LEN} bytes, got {0}")]
    KeLength(usize),
    /// An identity input is empty.
    #[error("{0} is empty")]
    EmptyIdentity(&'static str),
    /// An identity input has a character outside printable ASCII (space included).
    #[error("{0} must be printable ASCII without spaces")]
    UnsupportedCharacter(&'static str),
}

/// An enrolment key Ke, wiped on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct EnrolmentKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for EnrolmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrolmentKey(<redacted>)")
    }
}

impl EnrolmentKey {
    /// Ke from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<EnrolmentKey, KeyError> {
        let array: &[u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::KeLength(bytes.len()))?;
        Ok(EnrolmentKey::from_array(array))
    }

    /// Ke from a 32-byte array (a stored Ke, say).
    pub fn from_array(bytes: &[u8; KEY_LEN]) -> EnrolmentKey {
        EnrolmentKey(Zeroizing::new(*bytes))
    }
}

/// A derived key (Km, Kpsa or Kuc), wiped on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

impl DerivedKey {
    pub(crate) fn from_array(bytes: Zeroizing<[u8; KEY_LEN]>) -> DerivedKey {
        DerivedKey(bytes)
    }

    /// A key from the HMAC-SHA-256 of a [`DerivationInput`] computed elsewhere (inside a
    /// key store holding Ke); the caller wipes its own copy.
    pub fn from_mac(mac: &[u8; KEY_LEN]) -> DerivedKey {
        DerivedKey(Zeroizing::new(*mac))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Lower-case hex of the key, in a buffer wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        hex::encode_secret(self.0.as_slice())
    }
}

/// The message of one derivation: its label followed by its inputs, no separator. Holds
/// no secret (labels and identities are public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivationInput(Vec<u8>);

impl DerivationInput {
    /// LABEL_KM || MAF-ID (10.3.2).
    pub fn km(maf_id: &str) -> Result<DerivationInput, KeyError> {
        let maf_id = identity("MAF-ID", maf_id)?;
        Ok(DerivationInput::join(&[LABEL_KM.as_bytes(), maf_id]))
    }

    /// LABEL_KPSA || Enrolee-B-ID (10.3.3); the ID is the CSE-ID or AE-ID of the enrolee
    /// the key is shared with.
    pub fn kpsa(enrolee_b_id: &str) -> Result<DerivationInput, KeyError> {
        let enrolee_b_id = identity("Enrolee-B-ID", enrolee_b_id)?;
        Ok(DerivationInput::join(&[
            LABEL_KPSA.as_bytes(),
            enrolee_b_id,
        ]))
    }

    /// LABEL_KUC || SUID || Enrolment-Target-ID (10.3.7). The SUID enters as its decimal
    /// text ("22"), the encoding Bastion chose (docs/decisions.md).
    pub fn kuc(suid: Suid, target_id: &str) -> Result<DerivationInput, KeyError> {
        let target_id = identity("Enrolment-Target-ID", target_id)?;
        let suid_text = suid.to_string();
        Ok(DerivationInput::join(&[
            LABEL_KUC.as_bytes(),
            suid_text.as_bytes(),
            target_id,
        ]))
    }

    fn join(parts: &[&[u8]]) -> DerivationInput {
        DerivationInput(parts.concat())
    }

    /// The octets to MAC under Ke.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// HMAC-SHA-256(Ke, self), in this process.
    pub fn derive(&self, ke: &EnrolmentKey) -> DerivedKey {
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte Ke.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(ke.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&self.0);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        DerivedKey(out)
    }
}

/// Km = HMAC-SHA-256(Ke, LABEL_KM || MAF-ID) (10.3.2).
pub fn derive_km(ke: &EnrolmentKey, maf_id: &str) -> Result<DerivedKey, KeyError> {
    Ok(DerivationInput::km(maf_id)?.derive(ke))
}

/// Kpsa = HMAC-SHA-256(Ke, LABEL_KPSA || Enrolee-B-ID) (10.3.3).
pub fn derive_kpsa(ke: &EnrolmentKey, enrolee_b_id: &str) -> Result<DerivedKey, KeyError> {
    Ok(DerivationInput::kpsa(enrolee_b_id)?.derive(ke))
}

/// Kuc = HMAC-SHA-256(Ke, LABEL_KUC || SUID || Enrolment-Target-ID) (10.3.7).
pub fn derive_kuc(ke: &EnrolmentKey, suid: Suid, target_id: &str) -> Result<DerivedKey, KeyError> {
    Ok(DerivationInput::kuc(suid, target_id)?.derive(ke))
}

/// The octets of an identity input: its UTF-8, accepted only when printable ASCII.
fn identity<'a>(what: &'static str, id: &'a str) -> Result<&'a [u8], KeyError> {
    if id.is_empty() {
        return Err(KeyError::EmptyIdentity(what));
    }
    match id.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(id.as_bytes()),
        false => Err(KeyError::UnsupportedCharacter(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ke() -> EnrolmentKey {
        EnrolmentKey::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn ke_must_be_32_bytes() {
        assert_eq!(
            EnrolmentKey::from_slice(&[0u8; 31]).unwrap_err(),
            KeyError::KeLength(31)
        );
        assert_eq!(
            EnrolmentKey::from_slice(&[0u8; 48]).unwrap_err(),
            KeyError::KeLength(48)
        );
    }

    #[test]
    fn identities_must_be_printable_ascii() {
        assert_eq!(
            derive_km(&ke(), "").unwrap_err(),
            KeyError::EmptyIdentity("MAF-ID")
        );
        assert_eq!(
            derive_kpsa(&ke(), "CAE é").unwrap_err(),
            KeyError::UnsupportedCharacter("Enrolee-B-ID")
        );
        let suid = Suid::from_code(22).unwrap();
        assert_eq!(
            derive_kuc(&ke(), suid, "cse\n").unwrap_err(),
            KeyError::UnsupportedCharacter("Enrolment-Target-ID")
        );
    }

    #[test]
    fn the_three_derivations_are_separated_by_their_labels() {
        let km = derive_km(&ke(), "x").unwrap();
        let kpsa = derive_kpsa(&ke(), "x").unwrap();
        assert_ne!(km, kpsa);
        assert_eq!(format!("{km:?}"), "DerivedKey(<redacted>)");
        assert_eq!(format!("{:?}", ke()), "EnrolmentKey(<redacted>)");
    }
}
