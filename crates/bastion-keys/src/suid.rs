//! Security Usage Identifiers (`m2m:suid`, TS-0004 6.3.4.2; used by TS-0003 8.3 and 8.8):
//! the number that limits a provisioned symmetric key to one use, and that enters the
//! Kuc derivation (10.3.7). The tens digit says where the key came from, the units digit
//! what it is for.

use std::fmt;

/// Where the key came from (the tens digit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// 1x: pre-provisioned symmetric key.
    PreProvisioned,
    /// 2x: symmetric key provisioned by a Remote Security Provisioning Framework.
    RemotelyProvisioned,
    /// 3x: symmetric key distributed by a MAF.
    MafDistributed,
    /// 4x: certificate.
    Certificate,
}

/// What the key is for (the units digit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// x0: authenticating to a MEF.
    Mef,
    /// x1: authenticating to a MAF.
    Maf,
    /// x2: a security association (SAEF).
    Saef,
    /// x3: end-to-end security of primitives.
    EsPrim,
    /// x4: end-to-end security of data, encryption.
    EsDataEncrypt,
    /// x5: end-to-end security of data, signature.
    EsDataSign,
}

/// A Security Usage Identifier defined by the specification. Only the codes of the table
/// exist: 10–15, 21–25, 32–35, 40–45.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Suid(u8);

/// Why a SUID was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SuidError {
    /// Not a decimal number.
    #[error("SUID {0:?} is not a decimal number")]
    NotANumber(String),
    /// A number the SUID table does not define.
    #[error("SUID {0} is not defined (valid: 10-15, 21-25, 32-35, 40-45)")]
    Undefined(u32),
}

impl Suid {
    /// The SUID with code `code`, if the table defines it.
    pub fn from_code(code: u32) -> Result<Suid, SuidError> {
        let defined = matches!(code, 10..=15 | 21..=25 | 32..=35 | 40..=45);
        match (defined, u8::try_from(code)) {
            (true, Ok(byte)) => Ok(Suid(byte)),
            _ => Err(SuidError::Undefined(code)),
        }
    }

    /// Parses the decimal text of a SUID (as in `/fetchCredentials/<KeID>/<SUID>`).
    /// Only plain ASCII digits, no sign, no leading zero.
    pub fn parse(text: &str) -> Result<Suid, SuidError> {
        let plain = !text.is_empty()
            && text.len() <= 3
            && text.bytes().all(|b| b.is_ascii_digit())
            && !text.starts_with('0');
        if !plain {
            return Err(SuidError::NotANumber(text.to_owned()));
        }
        let code = text
            .parse::<u32>()
            .map_err(|_| SuidError::NotANumber(text.to_owned()))?;
        Suid::from_code(code)
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self.0
    }

    /// Where a key with this SUID came from.
    pub fn provenance(self) -> Provenance {
        match self.0 / 10 {
            1 => Provenance::PreProvisioned,
            2 => Provenance::RemotelyProvisioned,
            3 => Provenance::MafDistributed,
            _ => Provenance::Certificate,
        }
    }

    /// What a key with this SUID is for.
    pub fn usage(self) -> Usage {
        match self.0 % 10 {
            0 => Usage::Mef,
            1 => Usage::Maf,
            2 => Usage::Saef,
            3 => Usage::EsPrim,
            4 => Usage::EsDataEncrypt,
            _ => Usage::EsDataSign,
        }
    }
}

impl fmt::Debug for Suid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Suid({})", self.0)
    }
}

/// The decimal text, which is also what enters the Kuc derivation.
impl fmt::Display for Suid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_table_is_defined() {
        let defined: Vec<u32> = (0..=255).filter(|c| Suid::from_code(*c).is_ok()).collect();
        let mut expected: Vec<u32> = (10..=15).collect();
        expected.extend(21..=25);
        expected.extend(32..=35);
        expected.extend(40..=45);
        assert_eq!(defined, expected);
        assert_eq!(Suid::from_code(20), Err(SuidError::Undefined(20)));
        assert_eq!(Suid::from_code(300), Err(SuidError::Undefined(300)));
    }

    #[test]
    fn digits_name_provenance_and_usage() {
        let s = Suid::from_code(21).unwrap();
        assert_eq!(s.provenance(), Provenance::RemotelyProvisioned);
        assert_eq!(s.usage(), Usage::Maf);
        let s = Suid::from_code(32).unwrap();
        assert_eq!(s.provenance(), Provenance::MafDistributed);
        assert_eq!(s.usage(), Usage::Saef);
        let s = Suid::from_code(45).unwrap();
        assert_eq!(s.provenance(), Provenance::Certificate);
        assert_eq!(s.usage(), Usage::EsDataSign);
        assert_eq!(Suid::from_code(10).unwrap().usage(), Usage::Mef);
        assert_eq!(
            Suid::from_code(13).unwrap().provenance(),
            Provenance::PreProvisioned
        );
    }

    #[test]
    fn parse_accepts_plain_decimal_only() {
        assert_eq!(Suid::parse("22").unwrap().code(), 22);
        assert_eq!(Suid::parse("22").unwrap().to_string(), "22");
        for bad in ["", "022", "+22", "2a", " 22", "1000"] {
            assert!(
                matches!(Suid::parse(bad), Err(SuidError::NotANumber(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Suid::parse("99"), Err(SuidError::Undefined(99)));
    }
}
