//! Feeds arbitrary text to the identity parsers of the security layer: AE-ID, CSE-ID and
//! Credential-ID validation, the subjectAltName URI reader and the RFC 6920 `ni` digest
//! parser. None may panic; a SAN URI accepted as an identity must be an absolute ID
//! (`//` followed by an SP-ID and at least one more segment).
#![no_main]

use bastion_tls::identity::{
    binding_from_san_uri, validate_ae_id, validate_credential_id, validate_cse_id,
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
    if binding_from_san_uri(text).is_some() {
        let rest = text
            .strip_prefix("//")
            .expect("an identity SAN is absolute");
        assert!(rest.contains('/'), "an identity SAN names a CSE: {text:?}");
    }
});
