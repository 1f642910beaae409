//! Feeds arbitrary text to the identity parsers of the security layer: AE-ID, CSE-ID and
//! Credential-ID validation, the subjectAltName URI reader and the RFC 6920 `ni` digest
//! parser. None may panic; a SAN URI accepted as an identity must bind an absolute ID
//! (`//` followed by an SP-ID and at least one more segment).
#![no_main]

use bastion_tls::identity::{
    binding_from_san_uri, validate_ae_id, validate_credential_id, validate_cse_id, Binding,
};
use bastion_tls::NiDigest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = validate_ae_id(text);
    let _ = validate_cse_id(text);
    let _ = validate_credential_id(text);
    let _ = NiDigest::parse(text);
    // The identity is read from the URI (`onem2m:` scheme or none), so the check is on
    // what it binds, not on the text: that is what decides whom the peer speaks as.
    match binding_from_san_uri(text) {
        Some(Binding::Ae(id) | Binding::Cse(id)) => {
            let rest = id
                .strip_prefix("//")
                .expect("an identity SAN binds an absolute ID");
            assert!(rest.contains('/'), "an identity SAN names a CSE: {text:?}");
        }
        Some(Binding::CredentialId(id)) => panic!("a SAN URI bound a Credential-ID: {id:?}"),
        None => {}
    }
});
