//! Key identifiers of the form `RelativeKeyID@FQDN`: KeID (TS-0003 10.3.4), the MAF key
//! identifier (10.3.5), KpsaID (10.5) and KmID (10.6). The FQDN names who issued the key
//! (MEF, MAF or provisioning stakeholder), so a peer presented with the identifier knows
//! whom to ask for the key.

use std::fmt;

use crate::hex;

/// Longest FQDN (RFC 1035 2.3.4, without the trailing dot).
const MAX_FQDN_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Why a key identifier was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// No `@`, or more than one.
    #[error("key identifier must be RelativeKeyID@FQDN with exactly one '@'")]
    NotRelativeAtFqdn,
    /// The relative part is empty or has a character other than `A-Z a-z 0-9 . _ -`.
    #[error("relative key ID must be non-empty and use only A-Z, a-z, 0-9, '.', '_', '-'")]
    BadRelativePart,
    /// The FQDN is not a DNS name of letters, digits and hyphens.
    #[error("{0:?} is not a fully qualified domain name")]
    BadFqdn(String),
}

/// A validated `RelativeKeyID@FQDN`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyIdentifier {
    relative: String,
    fqdn: String,
}

impl KeyIdentifier {
    /// Builds an identifier from its two parts, checking both.
    pub fn new(relative: &str, fqdn: &str) -> Result<KeyIdentifier, IdentifierError> {
        check_relative(relative)?;
        check_fqdn(fqdn)?;
        Ok(KeyIdentifier {
            relative: relative.to_owned(),
            fqdn: fqdn.to_owned(),
        })
    }

    /// `hexBinary(id)@fqdn`, the form of KeID (10.3.4) and of the MAF key identifier
    /// (10.3.5); the hex is lower-case.
    pub fn from_binary_id(id: &[u8], fqdn: &str) -> Result<KeyIdentifier, IdentifierError> {
        KeyIdentifier::new(&hex::encode(id), fqdn)
    }

    /// Parses `RelativeKeyID@FQDN`.
    pub fn parse(text: &str) -> Result<KeyIdentifier, IdentifierError> {
        let mut parts = text.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(relative), Some(fqdn), None) => KeyIdentifier::new(relative, fqdn),
            _ => Err(IdentifierError::NotRelativeAtFqdn),
        }
    }

    /// The part before the `@`.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// The issuer's FQDN, after the `@`.
    pub fn fqdn(&self) -> &str {
        &self.fqdn
    }
}

impl fmt::Display for KeyIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.relative, self.fqdn)
    }
}

fn check_relative(relative: &str) -> Result<(), IdentifierError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    match !relative.is_empty() && relative.bytes().all(allowed) {
        true => Ok(()),
        false => Err(IdentifierError::BadRelativePart),
    }
}

/// Letters, digits and hyphens in dot-separated labels of 1 to 63 characters, no label
/// starting or ending with a hyphen (RFC 1123 2.1). Internationalised names must come
/// in their ASCII (A-label) form.
pub(crate) fn check_fqdn(fqdn: &str) -> Result<(), IdentifierError> {
    let label_ok = |label: &str| {
        (1..=MAX_LABEL_LEN).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match fqdn.len() <= MAX_FQDN_LEN && fqdn.split('.').all(label_ok) {
        true => Ok(()),
        false => Err(IdentifierError::BadFqdn(fqdn.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_id_is_lower_case_hex_at_fqdn() {
        let id = KeyIdentifier::from_binary_id(&[0xab, 0x01], "mef.example.com").unwrap();
        assert_eq!(id.to_string(), "ab01@mef.example.com");
        assert_eq!(id.relative(), "ab01");
        assert_eq!(id.fqdn(), "mef.example.com");
    }

    #[test]
    fn parse_round_trips_and_refuses_bad_forms() {
        let id = KeyIdentifier::parse("Device_7.a-1@maf.example.org").unwrap();
        assert_eq!(id.to_string(), "Device_7.a-1@maf.example.org");
        assert_eq!(
            KeyIdentifier::parse("no-at-sign"),
            Err(IdentifierError::NotRelativeAtFqdn)
        );
        assert_eq!(
            KeyIdentifier::parse("a@b@example.com"),
            Err(IdentifierError::NotRelativeAtFqdn)
        );
        assert_eq!(
            KeyIdentifier::parse("@example.com"),
            Err(IdentifierError::BadRelativePart)
        );
        assert_eq!(
            KeyIdentifier::parse("a b@example.com"),
            Err(IdentifierError::BadRelativePart)
        );
        for fqdn in ["", "-a.example", "a..example", "a_b.example", "exämple.com"] {
            assert_eq!(
                KeyIdentifier::parse(&format!("k@{fqdn}")),
                Err(IdentifierError::BadFqdn(fqdn.to_owned())),
                "{fqdn:?}"
            );
        }
        let long_label = "a".repeat(64);
        assert!(KeyIdentifier::new("k", &long_label).is_err());
        assert!(KeyIdentifier::new("k", &"a".repeat(63)).is_ok());
    }
}
