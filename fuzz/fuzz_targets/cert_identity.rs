//! Feeds arbitrary bytes, as a DER certificate, to the identity extraction of a peer's
//! certificate (the one SAN URI naming an AE-ID or CSE-ID), its fingerprint, its public
//! key and the strength check. None may panic on a certificate OpenSSL accepted.
#![no_main]

use bastion_tls::identity::{binding_from_certificate, certificate_fingerprint, spki_der};
use libfuzzer_sys::fuzz_target;
use openssl::x509::X509;

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = X509::from_der(data) else {
        return;
    };
    let _ = binding_from_certificate(&cert);
    let _ = certificate_fingerprint(&cert);
    let _ = spki_der(&cert);
    let _ = bastion_tls::strength::acceptable(&cert);
});
