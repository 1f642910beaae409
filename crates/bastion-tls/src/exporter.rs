//! RFC 5705 keying-material export from an established association (TS-0003 10.3.1):
//! the oneM2M labels, and the split of the 48 exported bytes into a 16-byte key
//! identifier and a 32-byte key.

use openssl::ssl::SslRef;
use zeroize::Zeroizing;

use crate::hexutil;

/// Label for Kc / KcID (MAF-based SAEF key, 10.3.1, 10.3.5).
pub const LABEL_CONNECTION: &str = "EXPORTER-oneM2M-Connection";
/// Label for Ke / RelativeKeID (enrolment, 10.3.1, 10.3.4).
pub const LABEL_BOOTSTRAP: &str = "EXPORTER-oneM2M-Bootstrap";
/// Output length for both labels (10.3.1).
pub const EXPORT_LEN: usize = 48;

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The session cannot export (no handshake yet, or OpenSSL refused).
    #[error("keying material export failed: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// Raw RFC 5705 export; the output is wiped on drop.
pub fn export(
    ssl: &SslRef,
    label: &str,
    context: Option<&[u8]>,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, ExportError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    ssl.export_keying_material(&mut out, label, context)?;
    Ok(out)
}

/// A 48-byte export split into key identifier (most significant 16 bytes, i.e. the first
/// ones read big-endian) and key (least significant 32 bytes). The byte order is this
/// crate's reading: the spec does not spell it out (GAP in the digest, §7.2).
#[derive(Clone)]
pub struct ExportedKey {
    key_id: [u8; 16],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKey")
            .field("key_id", &hexutil::encode(&self.key_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ExportedKey {
    fn split(out: &[u8]) -> Self {
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&out[..16]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&out[16..EXPORT_LEN]);
        Self { key_id, key }
    }

    /// The 16-byte key identifier (KcID / RelativeKeID).
    pub fn key_id(&self) -> &[u8; 16] {
        &self.key_id
    }

    /// The 32-byte key (Kc / Ke).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// `<hex(key id)>@<fqdn>` (10.3.5; lower-case hex, the case is a GAP).
    pub fn key_identifier(&self, fqdn: &str) -> String {
        format!("{}@{fqdn}", hexutil::encode(&self.key_id))
    }
}

/// Kc and KcID with label "EXPORTER-oneM2M-Connection", no context.
pub fn export_connection_key(ssl: &SslRef) -> Result<ExportedKey, ExportError> {
    let out = export(ssl, LABEL_CONNECTION, None, EXPORT_LEN)?;
    Ok(ExportedKey::split(&out))
}

/// Ke and RelativeKeID with label "EXPORTER-oneM2M-Bootstrap", no context.
pub fn export_bootstrap_key(ssl: &SslRef) -> Result<ExportedKey, ExportError> {
    let out = export(ssl, LABEL_BOOTSTRAP, None, EXPORT_LEN)?;
    Ok(ExportedKey::split(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_id_first_then_key() {
        let out: Vec<u8> = (0u8..48).collect();
        let k = ExportedKey::split(&out);
        assert_eq!(k.key_id()[0], 0);
        assert_eq!(k.key_id()[15], 15);
        assert_eq!(k.key()[0], 16);
        assert_eq!(k.key()[31], 47);
        assert_eq!(
            k.key_identifier("maf.example.com"),
            "000102030405060708090a0b0c0d0e0f@maf.example.com"
        );
        assert!(!format!("{k:?}").contains("101112"));
    }
}
