//! The minimum strength of every certificate this crate accepts from a peer, checked by
//! Bastion itself rather than by OpenSSL's security level.
//!
//! The TLS contexts run at OpenSSL security level 0 because OpenSSL 3.2 and later rank
//! the CCM_8 suites at level 0, and TS-0003 requires them (docs/decisions.md, "OpenSSL
//! 3.6, security level 0, and explicit limits"). Level 0 also drops OpenSSL's checks of
//! key sizes and signature digests in certificate chains, so this module restores them,
//! stricter than OpenSSL's default level 1: every certificate of a peer's chain, trust
//! anchors and pinned raw public keys included, must carry an EC key of at least 256
//! bits, an Ed25519/Ed448 key or an RSA key of at least 2048 bits, and a signature with
//! SHA-256 or stronger (or EdDSA). Everything else the level governs is pinned
//! explicitly by the profiles: versions (TLS 1.2 and 1.3), cipher suites, groups and
//! signature algorithms ([`SIGALGS`]).

use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::X509Ref;

/// Handshake signature algorithms, offered and accepted: SHA-2 and EdDSA only.
pub const SIGALGS: &str = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:ed25519:ed448:\
rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:RSA+SHA256:RSA+SHA384:RSA+SHA512";

/// Certificate signature algorithms accepted besides EdDSA (an allowlist: anything else
/// fails).
const SIGNATURES: [Nid; 6] = [
    Nid::ECDSA_WITH_SHA256,
    Nid::ECDSA_WITH_SHA384,
    Nid::ECDSA_WITH_SHA512,
    Nid::SHA256WITHRSAENCRYPTION,
    Nid::SHA384WITHRSAENCRYPTION,
    Nid::SHA512WITHRSAENCRYPTION,
];

/// Whether `cert`'s key and signature are strong enough to take part in a chain.
pub fn acceptable(cert: &X509Ref) -> bool {
    let signature = cert.signature_algorithm().object().nid();
    // EdDSA's signature algorithm identifiers are its key types' (RFC 8410).
    let eddsa = [Id::ED25519, Id::ED448].map(|id| id.as_raw());
    (SIGNATURES.contains(&signature) || eddsa.contains(&signature.as_raw())) && key_acceptable(cert)
}

fn key_acceptable(cert: &X509Ref) -> bool {
    let Ok(key) = cert.public_key() else {
        return false;
    };
    match key.id() {
        Id::EC => key.bits() >= 256,
        Id::ED25519 | Id::ED448 => true,
        Id::RSA => key.bits() >= 2048,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::{X509NameBuilder, X509};

    fn self_signed(key: &PKey<Private>, digest: MessageDigest) -> X509 {
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "strength").expect("cn");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(key).expect("key");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(1).expect("t"))
            .expect("na");
        b.sign(key, digest).expect("sign");
        b.build()
    }

    fn ec(curve: Nid) -> PKey<Private> {
        let group = EcGroup::from_curve_name(curve).expect("curve");
        PKey::from_ec_key(EcKey::generate(&group).expect("ec")).expect("pkey")
    }

    fn rsa(bits: u32) -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey")
    }

    #[test]
    fn p256_and_p384_with_sha2_pass() {
        let p256 = ec(Nid::X9_62_PRIME256V1);
        assert!(acceptable(&self_signed(&p256, MessageDigest::sha256())));
        let p384 = ec(Nid::SECP384R1);
        assert!(acceptable(&self_signed(&p384, MessageDigest::sha384())));
        assert!(acceptable(&self_signed(
            &rsa(2048),
            MessageDigest::sha256()
        )));
    }

    #[test]
    fn small_keys_fail() {
        let p224 = ec(Nid::SECP224R1);
        assert!(!acceptable(&self_signed(&p224, MessageDigest::sha256())));
        assert!(!acceptable(&self_signed(
            &rsa(1024),
            MessageDigest::sha256()
        )));
    }

    #[test]
    fn sha1_and_md5_signatures_fail() {
        let p256 = ec(Nid::X9_62_PRIME256V1);
        assert!(!acceptable(&self_signed(&p256, MessageDigest::sha1())));
        assert!(!acceptable(&self_signed(&rsa(2048), MessageDigest::sha1())));
        assert!(!acceptable(&self_signed(&rsa(2048), MessageDigest::md5())));
    }
}
