//! RFC 5705 keying-material export from an established association (TS-0003 10.3.1):
//! the oneM2M labels and the export itself. The split of the 48 exported bytes into key
//! and key identifier is pure and lives in `bastion_keys::export`.

use openssl::ssl::SslRef;
use zeroize::Zeroizing;

pub use bastion_keys::ExportedKey;
pub use bastion_keys::EXPORT_LEN;

/// Label for Kc / KcID (MAF-based SAEF key, 10.3.1, 10.3.5).
pub const LABEL_CONNECTION: &str = "EXPORTER-oneM2M-Connection";
/// Label for Ke / RelativeKeID (enrolment, 10.3.1, 10.3.4).
pub const LABEL_BOOTSTRAP: &str = "EXPORTER-oneM2M-Bootstrap";

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The session cannot export (no handshake yet, or OpenSSL refused).
    #[error("keying material export failed: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// OpenSSL returned another length than asked for (never expected).
    #[error(transparent)]
    Length(#[from] bastion_keys::export::ExportLengthError),
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

/// Kc and KcID with label "EXPORTER-oneM2M-Connection", no context.
pub fn export_connection_key(ssl: &SslRef) -> Result<ExportedKey, ExportError> {
    let out = export(ssl, LABEL_CONNECTION, None, EXPORT_LEN)?;
    Ok(ExportedKey::split(&out)?)
}

/// Ke and RelativeKeID with label "EXPORTER-oneM2M-Bootstrap", no context.
pub fn export_bootstrap_key(ssl: &SslRef) -> Result<ExportedKey, ExportError> {
    let out = export(ssl, LABEL_BOOTSTRAP, None, EXPORT_LEN)?;
    Ok(ExportedKey::split(&out)?)
}
