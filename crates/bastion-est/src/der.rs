//! The few DER structures EST carries that OpenSSL's Rust binding does not build or
//! read: the certs-only PKCS#7 of `cacerts` and enrolment answers (RFC 7030 4.1.3,
//! 4.2.3; RFC 5652 SignedData without signers), the CSR attributes answer (RFC 7030
//! 4.5.2), and the challengePassword attribute of a PKCS#10 request (RFC 2985 5.4.1).
//! A bounded reader (lengths checked against the input, at most four length octets) and
//! a writer; nothing here interprets certificates. Elements are written by
//! `bastion_tls::certs::der_tlv`, the workspace's one DER writer.

use bastion_tls::certs::der_tlv as tlv;

/// A DER input that is not what was expected; the CSR (or whatever held it) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct DerError(pub &'static str);

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
/// `[0]` constructed: the attributes of a CertificationRequestInfo, the content of a
/// ContentInfo, the certificates of a SignedData.
const CONTEXT_0: u8 = 0xa0;

/// 1.2.840.113549.1.9.7 (PKCS#9 challengePassword).
pub const OID_CHALLENGE_PASSWORD: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07];
/// 1.2.840.113549.1.9.14 (PKCS#9 extensionRequest).
const OID_EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
/// 2.5.29.17 (subjectAltName).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// 1.2.840.10045.2.1 (id-ecPublicKey).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 (secp256r1).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.2.840.10045.4.3.2 (ecdsa-with-SHA256).
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// 1.2.840.113549.1.7.2 (signedData).
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// 1.2.840.113549.1.7.1 (data).
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

/// One tag-length-value.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let [tag, first, rest @ ..] = input else {
        return Err(DerError("truncated"));
    };
    if tag & 0x1f == 0x1f {
        return Err(DerError("multi-byte tags are not used here"));
    }
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(*first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(DerError("bad length"));
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(DerError("length exceeds the input"));
    }
    Ok((
        Tlv {
            tag: *tag,
            content: &rest[..len],
        },
        &rest[len..],
    ))
}

/// Reads exactly one TLV with `tag` filling `input`.
fn read_only<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<&'a [u8], DerError> {
    let (tlv, rest) = read(input)?;
    if tlv.tag != tag || !rest.is_empty() {
        return Err(DerError(what));
    }
    Ok(tlv.content)
}

/// The TLVs one after another in `input`.
fn children(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

/// The challengePassword of a DER PKCS#10 request (`None` without one). A request
/// with two, or one holding several values or a value that is not a string, is refused.
pub fn challenge_password(csr_der: &[u8]) -> Result<Option<String>, DerError> {
    let request = read_only(csr_der, SEQUENCE, "not a CertificationRequest")?;
    let (info, _) = read(request)?;
    if info.tag != SEQUENCE {
        return Err(DerError("no CertificationRequestInfo"));
    }
    // version, subject, subjectPKInfo, [0] attributes
    let fields = children(info.content)?;
    let Some(attributes) = fields.get(3) else {
        return Ok(None);
    };
    if attributes.tag != CONTEXT_0 {
        return Err(DerError("no attributes"));
    }
    let mut found = None;
    for attribute in children(attributes.content)? {
        if attribute.tag != SEQUENCE {
            return Err(DerError("attribute is not a SEQUENCE"));
        }
        let (oid, values) = read(attribute.content)?;
        if oid.tag != OID || oid.content != OID_CHALLENGE_PASSWORD {
            continue;
        }
        if found.is_some() {
            return Err(DerError("two challengePassword attributes"));
        }
        let values = read_only(values, SET, "challengePassword values are not a SET")?;
        let (value, rest) = read(values)?;
        if !rest.is_empty() {
            return Err(DerError("challengePassword has several values"));
        }
        // DirectoryString: PrintableString, UTF8String (RFC 2985 5.4.1), IA5String.
        if !matches!(value.tag, 0x13 | 0x0c | 0x16) {
            return Err(DerError("challengePassword is not a string"));
        }
        let text = std::str::from_utf8(value.content)
            .map_err(|_| DerError("challengePassword is not UTF-8"))?;
        found = Some(text.to_owned());
    }
    Ok(found)
}

fn oid(bytes: &[u8]) -> Vec<u8> {
    tlv(OID, bytes)
}

/// A certs-only ("degenerate") PKCS#7 SignedData carrying `certificates_der`: no
/// content, no signers (RFC 7030 4.1.3 and 4.2.3, RFC 5652 5.1).
pub fn certs_only(certificates_der: &[&[u8]]) -> Vec<u8> {
    let certificates: Vec<u8> = certificates_der.concat();
    let signed_data = [
        tlv(INTEGER, &[1]),
        tlv(SET, &[]),
        tlv(SEQUENCE, &oid(OID_DATA)),
        tlv(CONTEXT_0, &certificates),
        tlv(SET, &[]),
    ]
    .concat();
    let content_info = [
        oid(OID_SIGNED_DATA),
        tlv(CONTEXT_0, &tlv(SEQUENCE, &signed_data)),
    ]
    .concat();
    tlv(SEQUENCE, &content_info)
}

/// The CSR attributes Bastion asks for (RFC 7030 4.5.2; TS-0003 8.3.6 requires a
/// challengePassword and an identity attribute): challengePassword; an extensionRequest
/// for a subjectAltName (the identity, a URI); an EC key on P-256 (10.1.1); signed with
/// ECDSA and SHA-256.
pub fn csr_attributes() -> Vec<u8> {
    let items = [
        oid(OID_CHALLENGE_PASSWORD),
        tlv(
            SEQUENCE,
            &[
                oid(OID_EXTENSION_REQUEST),
                tlv(SET, &oid(OID_SUBJECT_ALT_NAME)),
            ]
            .concat(),
        ),
        tlv(
            SEQUENCE,
            &[oid(OID_EC_PUBLIC_KEY), tlv(SET, &oid(OID_P256))].concat(),
        ),
        oid(OID_ECDSA_SHA256),
    ]
    .concat();
    tlv(SEQUENCE, &items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_bounded_by_the_input() {
        assert_eq!(read(&[0x30]).unwrap_err(), DerError("truncated"));
        assert_eq!(
            read(&[0x30, 0x05, 0x01]).unwrap_err(),
            DerError("length exceeds the input")
        );
        assert_eq!(
            read(&[0x30, 0x85, 1, 1, 1, 1, 1]).unwrap_err(),
            DerError("bad length")
        );
        assert_eq!(
            read(&[0x30, 0x82, 0xff, 0xff]).unwrap_err(),
            DerError("length exceeds the input")
        );
        let long = tlv(0x04, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (t, rest) = read(&long).unwrap();
        assert_eq!(t.content.len(), 300);
        assert!(rest.is_empty());
    }

    #[test]
    fn certs_only_is_read_back_by_openssl() {
        let ca =
            bastion_tls::certs::create_ca("CA", bastion_tls::certs::Validity::days(1)).unwrap();
        let der = openssl::x509::X509::from_pem(ca.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let p7 = openssl::pkcs7::Pkcs7::from_der(&certs_only(&[&der])).unwrap();
        let certs = p7.signed().unwrap().certificates().unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs.get(0).unwrap().to_der().unwrap(), der);
    }

    #[test]
    fn garbage_is_not_a_csr() {
        assert!(challenge_password(b"not der").is_err());
        assert!(challenge_password(&[0x30, 0x00]).is_err());
    }
}
