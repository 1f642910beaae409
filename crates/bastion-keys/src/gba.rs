//! The GBA pieces of the GBA-based remote security provisioning framework (TS-0003
//! 8.3.2.3), as pure functions: the generic key derivation function of 3GPP TS 33.220
//! Annex B, the NAF-specific key Ks_NAF (GBA_ME), the NAF_Id, the Bootstrapping
//! Transaction Identifier B-TID and the TLS-PSK identity that carries it (3GPP TS 33.222).
//!
//! In oneM2M terms the enrolment key Ke is the GBA key Ks, KeID is the B-TID, the
//! Enrolment Target (a CSE or a MAF) is the NAF, and Kpsa / Km is Ks_NAF with
//! KpsaID / KmID = KeID.
//!
//! * **KDF** (33.220 B.2): `HMAC-SHA-256(Key, S)` with
//!   `S = FC || P0 || L0 || P1 || L1 || ... || Pn || Ln`, FC one octet, each `Li` the
//!   length of `Pi` in octets as two octets, most significant first ([`kdf`]).
//! * **Ks_NAF** (33.220 B.3, GBA_ME): FC = 0x01, P0 = `gba-me`, P1 = RAND, P2 = IMPI
//!   (UTF-8), P3 = NAF_Id; the key is Ks (CK || IK, 32 octets) ([`derive_ks_naf`]).
//! * **NAF_Id** (33.220 4.5.2): the NAF's FQDN (UTF-8) followed by the five-octet Ua
//!   security protocol identifier of Annex H ([`NafId`], [`UaProtocolId`]).
//! * **B-TID** (33.220 4.5.2): `base64(RAND)@BSF-domain`, standard base64 alphabet with
//!   padding ([`BTid`]).
//! * **PSK identity** (33.222 TLS-PSK with GBA_ME): `3GPP-bootstrapping.` followed by the
//!   B-TID ([`BTid::psk_identity`], [`BTid::from_psk_identity`]).
//!
//! Where the texts leave a choice (the separator after the prefix, which Ua identifier a
//! oneM2M association uses, identity character sets) the choice is in docs/decisions.md,
//! "Issue 15 — GBA"; `tests/data/gba.json` pins every byte.

use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::derive::{DerivedKey, KEY_LEN};
use crate::identifier::check_fqdn;

/// FC of the NAF-specific key derivations (33.220 B.3).
pub const FC_NAF_KEY: u8 = 0x01;
/// P0 of Ks_NAF / Ks_ext_NAF in GBA_ME.
pub const GBA_ME: &str = "gba-me";
/// Length of RAND (the AKA challenge) in octets.
pub const RAND_LEN: usize = 16;
/// Prefix of a TLS-PSK identity that carries a B-TID bootstrapped with GBA_ME (33.222).
pub const PSK_IDENTITY_PREFIX: &str = "3GPP-bootstrapping.";
/// The longest PSK identity Bastion's TLS stack sends or accepts (OpenSSL's historical
/// limit, kept by `bastion-tls`).
pub const MAX_PSK_IDENTITY_LEN: usize = 128;
/// The longest KDF parameter: its length must fit the two-octet `Li`.
pub const MAX_PARAMETER_LEN: usize = u16::MAX as usize;

/// Why a GBA value was refused. Never carries key bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GbaError {
    /// Ks is not 32 octets.
    #[error("the GBA key Ks must be {KEY_LEN} bytes, got {0}")]
    KsLength(usize),
    /// A KDF parameter is longer than 65535 octets.
    #[error("a KDF parameter is {0} bytes, more than 65535")]
    ParameterTooLong(usize),
    /// RAND is not 16 octets.
    #[error("RAND must be {RAND_LEN} bytes, got {0}")]
    RandLength(usize),
    /// The IMPI is empty or not printable ASCII.
    #[error("the IMPI must be non-empty printable ASCII without spaces")]
    BadImpi,
    /// The NAF FQDN or the BSF domain is not a DNS name.
    #[error("{0:?} is not a fully qualified domain name")]
    BadFqdn(String),
    /// A Ua security protocol identifier is not five octets.
    #[error("a Ua security protocol identifier is 5 bytes, got {0}")]
    UaLength(usize),
    /// A B-TID is not `base64(RAND)@domain`.
    #[error("a B-TID must be base64(16-byte RAND)@BSF-domain")]
    BadBtid,
    /// A PSK identity does not start with the GBA prefix or is too long.
    #[error("not a GBA PSK identity: it must be \"{PSK_IDENTITY_PREFIX}\" and a B-TID, at most {MAX_PSK_IDENTITY_LEN} bytes")]
    NotGbaIdentity,
}

/// The GBA key Ks (CK || IK), wiped on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct BootstrapKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for BootstrapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapKey(<redacted>)")
    }
}

impl BootstrapKey {
    /// Ks from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<BootstrapKey, GbaError> {
        let array: &[u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| GbaError::KsLength(bytes.len()))?;
        Ok(BootstrapKey(Zeroizing::new(*array)))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The 33.220 Annex B generic KDF: `HMAC-SHA-256(key, FC || P0 || L0 || ... || Pn || Ln)`.
pub fn kdf(key: &[u8], fc: u8, parameters: &[&[u8]]) -> Result<DerivedKey, GbaError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(&[fc]);
    for p in parameters {
        let len = u16::try_from(p.len()).map_err(|_| GbaError::ParameterTooLong(p.len()))?;
        mac.update(p);
        mac.update(&len.to_be_bytes());
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(DerivedKey::from_array(out))
}

/// A five-octet Ua security protocol identifier (33.220 Annex H): the organization octet,
/// then four octets the organization assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UaProtocolId([u8; 5]);

impl UaProtocolId {
    /// Shared-key TLS 1.2 of TS 33.222 with the cipher suite `suite`:
    /// (0x01, 0x00, 0x01, suite high octet, suite low octet).
    pub const fn tls12_shared_key(suite: u16) -> UaProtocolId {
        let [hi, lo] = suite.to_be_bytes();
        UaProtocolId([0x01, 0x00, 0x01, hi, lo])
    }

    /// Shared-key TLS 1.3 of TS 33.222: (0x01, 0x00, 0x00, 0x00, 0x07).
    pub const TLS13_SHARED_KEY: UaProtocolId = UaProtocolId([0x01, 0x00, 0x00, 0x00, 0x07]);

    /// The identifier Bastion uses for a oneM2M TLS-PSK association with a NAF unless
    /// configured otherwise: TLS 1.2 with TLS_PSK_WITH_AES_128_CBC_SHA256 (0x00, 0xAE),
    /// the suite TS-0003 10.2.2 makes mandatory (docs/decisions.md).
    pub const ONEM2M_DEFAULT: UaProtocolId = UaProtocolId::tls12_shared_key(0x00AE);

    /// From exactly five octets.
    pub fn from_slice(bytes: &[u8]) -> Result<UaProtocolId, GbaError> {
        let array: [u8; 5] = bytes
            .try_into()
            .map_err(|_| GbaError::UaLength(bytes.len()))?;
        Ok(UaProtocolId(array))
    }

    /// The five octets.
    pub fn as_bytes(&self) -> &[u8; 5] {
        &self.0
    }
}

/// NAF_Id = FQDN of the NAF || Ua security protocol identifier (33.220 4.5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NafId {
    fqdn: String,
    ua: UaProtocolId,
}

impl NafId {
    /// A NAF_Id for the NAF `fqdn` (a DNS name; for a CSE the public domain name of its
    /// CSE-ID, for a MAF its FQDN, TS-0003 8.3.2.3) and the Ua protocol `ua`.
    pub fn new(fqdn: &str, ua: UaProtocolId) -> Result<NafId, GbaError> {
        check_fqdn(fqdn).map_err(|_| GbaError::BadFqdn(fqdn.to_owned()))?;
        Ok(NafId {
            fqdn: fqdn.to_ascii_lowercase(),
            ua,
        })
    }

    /// Splits the octets of a NAF_Id (FQDN then five octets), as a BSF receives it.
    pub fn from_bytes(bytes: &[u8]) -> Result<NafId, GbaError> {
        if bytes.len() < 5 {
            return Err(GbaError::UaLength(bytes.len()));
        }
        let (fqdn, ua) = bytes.split_at(bytes.len() - 5);
        let fqdn = std::str::from_utf8(fqdn)
            .map_err(|_| GbaError::BadFqdn(String::from_utf8_lossy(fqdn).into_owned()))?;
        NafId::new(fqdn, UaProtocolId::from_slice(ua)?)
    }

    /// The NAF's FQDN (lower case).
    pub fn fqdn(&self) -> &str {
        &self.fqdn
    }

    /// The Ua security protocol identifier.
    pub fn ua(&self) -> UaProtocolId {
        self.ua
    }

    /// The octets that enter the KDF: FQDN then the identifier.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fqdn.len() + 5);
        out.extend_from_slice(self.fqdn.as_bytes());
        out.extend_from_slice(&self.ua.0);
        out
    }
}

/// Ks_NAF = KDF(Ks, FC 0x01, "gba-me", RAND, IMPI, NAF_Id) (33.220 B.3, GBA_ME). The IMPI
/// enters as its UTF-8 octets; Bastion accepts only printable ASCII IMPIs.
pub fn derive_ks_naf(
    ks: &BootstrapKey,
    rand: &[u8; RAND_LEN],
    impi: &str,
    naf_id: &NafId,
) -> Result<DerivedKey, GbaError> {
    if impi.is_empty() || !impi.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GbaError::BadImpi);
    }
    kdf(
        ks.as_bytes(),
        FC_NAF_KEY,
        &[GBA_ME.as_bytes(), rand, impi.as_bytes(), &naf_id.to_bytes()],
    )
}

/// A Bootstrapping Transaction Identifier, `base64(RAND)@BSF-domain` (33.220 4.5.2):
/// in oneM2M the enrolment key identifier KeID of the GBA framework.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BTid {
    rand: [u8; RAND_LEN],
    bsf_domain: String,
}

impl BTid {
    /// The B-TID for the challenge `rand` issued by the BSF of `bsf_domain`.
    pub fn new(rand: [u8; RAND_LEN], bsf_domain: &str) -> Result<BTid, GbaError> {
        check_fqdn(bsf_domain).map_err(|_| GbaError::BadFqdn(bsf_domain.to_owned()))?;
        Ok(BTid {
            rand,
            bsf_domain: bsf_domain.to_ascii_lowercase(),
        })
    }

    /// Parses `base64(RAND)@domain`; the base64 must be canonical (padded, no spare bits)
    /// and decode to exactly 16 octets.
    pub fn parse(text: &str) -> Result<BTid, GbaError> {
        let (encoded, domain) = text.split_once('@').ok_or(GbaError::BadBtid)?;
        let mut rand = [0u8; RAND_LEN];
        let decoded = Base64::decode(encoded, &mut rand).map_err(|_| GbaError::BadBtid)?;
        if decoded.len() != RAND_LEN {
            return Err(GbaError::BadBtid);
        }
        BTid::new(rand, domain).map_err(|_| GbaError::BadBtid)
    }

    /// RAND, the AKA challenge the bootstrapping used.
    pub fn rand(&self) -> &[u8; RAND_LEN] {
        &self.rand
    }

    /// The BSF's domain, after the `@`.
    pub fn bsf_domain(&self) -> &str {
        &self.bsf_domain
    }

    /// The TLS-PSK identity that presents this B-TID: `3GPP-bootstrapping.` || B-TID.
    pub fn psk_identity(&self) -> Result<String, GbaError> {
        let identity = format!("{PSK_IDENTITY_PREFIX}{self}");
        match identity.len() <= MAX_PSK_IDENTITY_LEN {
            true => Ok(identity),
            false => Err(GbaError::NotGbaIdentity),
        }
    }

    /// The B-TID a GBA TLS-PSK identity carries.
    pub fn from_psk_identity(identity: &str) -> Result<BTid, GbaError> {
        if identity.len() > MAX_PSK_IDENTITY_LEN {
            return Err(GbaError::NotGbaIdentity);
        }
        let btid = identity
            .strip_prefix(PSK_IDENTITY_PREFIX)
            .ok_or(GbaError::NotGbaIdentity)?;
        BTid::parse(btid)
    }
}

impl std::fmt::Display for BTid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}",
            Base64::encode_string(&self.rand),
            self.bsf_domain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks() -> BootstrapKey {
        BootstrapKey::from_slice(&[9u8; 32]).unwrap()
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            BootstrapKey::from_slice(&[0; 16]).unwrap_err(),
            GbaError::KsLength(16)
        );
        assert_eq!(
            kdf(&[1], 1, &[&vec![0u8; 65536]]).unwrap_err(),
            GbaError::ParameterTooLong(65536)
        );
        assert!(kdf(&[1], 1, &[&vec![0u8; 65535]]).is_ok());
        assert_eq!(
            UaProtocolId::from_slice(&[1, 2]).unwrap_err(),
            GbaError::UaLength(2)
        );
    }

    #[test]
    fn naf_id_round_trips_and_refuses_bad_names() {
        let id = NafId::new("In-CSE.example.com", UaProtocolId::ONEM2M_DEFAULT).unwrap();
        assert_eq!(id.fqdn(), "in-cse.example.com");
        assert_eq!(&id.to_bytes()[id.fqdn().len()..], &[1, 0, 1, 0, 0xae]);
        assert_eq!(NafId::from_bytes(&id.to_bytes()).unwrap(), id);
        assert_eq!(
            NafId::new("not a name", UaProtocolId::TLS13_SHARED_KEY).unwrap_err(),
            GbaError::BadFqdn("not a name".into())
        );
        assert_eq!(
            NafId::from_bytes(&[1, 2]).unwrap_err(),
            GbaError::UaLength(2)
        );
    }

    #[test]
    fn impi_must_be_printable_ascii() {
        let naf = NafId::new("naf.example", UaProtocolId::ONEM2M_DEFAULT).unwrap();
        for impi in ["", "a b@x", "dévice@x"] {
            assert_eq!(
                derive_ks_naf(&ks(), &[0; 16], impi, &naf).unwrap_err(),
                GbaError::BadImpi
            );
        }
    }

    #[test]
    fn btid_parsing_refuses_malformed_text() {
        for bad in [
            "no-at-sign",
            "AAAAAAAAAAAAAAAAAAAAAA==@",
            "AAAAAAAAAAAAAAAAAAAAAA@bsf.example",
            "AAAAAAAAAAAAAAAAAAAAAAAA@bsf.example",
            "AAAAAAAAAAAAAAAAAAAAAB==@bsf.example",
            "AAAAAAAAAAAAAAAAAAAAAA==@bsf..example",
            "AAAAAAAAAAAAAAAAAAAAAA==@bsf@example",
        ] {
            assert_eq!(BTid::parse(bad), Err(GbaError::BadBtid), "{bad}");
        }
        let btid = BTid::parse("AAAAAAAAAAAAAAAAAAAAAA==@BSF.example").unwrap();
        assert_eq!(btid.to_string(), "AAAAAAAAAAAAAAAAAAAAAA==@bsf.example");
    }

    #[test]
    fn psk_identity_needs_the_prefix_and_a_short_domain() {
        let btid = BTid::new([7; 16], "bsf.example").unwrap();
        let identity = btid.psk_identity().unwrap();
        assert_eq!(BTid::from_psk_identity(&identity).unwrap(), btid);
        assert_eq!(
            BTid::from_psk_identity(&btid.to_string()),
            Err(GbaError::NotGbaIdentity)
        );
        assert_eq!(
            BTid::from_psk_identity("3GPP-bootstrapping-uicc.AAAAAAAAAAAAAAAAAAAAAA==@b.example"),
            Err(GbaError::NotGbaIdentity)
        );
        let long = format!("{}.example", "a".repeat(62)) + &format!(".{}", "b".repeat(30));
        let btid = BTid::new([7; 16], &long).unwrap();
        assert_eq!(btid.psk_identity(), Err(GbaError::NotGbaIdentity));
        assert_eq!(
            BTid::from_psk_identity(&format!("{PSK_IDENTITY_PREFIX}{btid}")),
            Err(GbaError::NotGbaIdentity)
        );
        assert_eq!(format!("{:?}", ks()), "BootstrapKey(<redacted>)");
    }
}
