//! The CSE's own TLS client credential for a function or broker it reaches, read from the
//! files a configuration section names: a PSK identity with its key file (owner-only,
//! hex), or a certificate chain, its private key (owner-only) and the trust anchors of the
//! server. One reader for every section that names such files (`[provisioning]` maf-*,
//! `[mqtt]` tls-*), so that they read and report them alike.

use crate::Failure;
use bastion_tls::{ClientOptions, PskKey, TlsClient};
use std::path::{Path, PathBuf};

/// The files of one client credential, as a section names them (relative paths are
/// resolved by the caller).
pub enum ClientCredentialFiles<'a> {
    /// `identity` must be a key identifier (`RelativeKeyID@FQDN`, as KpsaID and KmID
    /// are) unless `any_identity`, for a server that names its clients otherwise (a
    /// broker): then any 1 to 128 printable ASCII characters.
    Psk {
        identity: &'a str,
        key_file: &'a Path,
        any_identity: bool,
    },
    Certificate {
        chain_file: &'a Path,
        key_file: &'a Path,
        anchors_file: &'a Path,
    },
}

/// Builds the client; `what` prefixes every error (the section and key).
pub fn client_from_files(
    files: ClientCredentialFiles<'_>,
    resolve: impl Fn(&Path) -> PathBuf,
    what: &str,
) -> Result<TlsClient, Failure> {
    let options = ClientOptions::default();
    match files {
        ClientCredentialFiles::Psk {
            identity,
            key_file,
            any_identity,
        } => {
            let key = PskKey::from_file(&resolve(key_file))
                .map_err(|e| Failure::Runtime(format!("{what} PSK file: {e}")))?;
            let client = if any_identity {
                TlsClient::psk_with_identity(identity, key, &options)
            } else {
                TlsClient::psk(identity, key, &options)
            };
            client.map_err(|e| Failure::Config(format!("{what} PSK identity: {e}")))
        }
        ClientCredentialFiles::Certificate {
            chain_file,
            key_file,
            anchors_file,
        } => {
            let read = |f: &Path| {
                std::fs::read_to_string(resolve(f)).map_err(|e| {
                    Failure::Runtime(format!("{what}: cannot read {}: {e}", resolve(f).display()))
                })
            };
            let key_pem = bastion_tls::secret::read_secret_text(&resolve(key_file))
                .map_err(|e| Failure::Runtime(format!("{what} key file: {e}")))?;
            TlsClient::certificate(
                &read(chain_file)?,
                &key_pem,
                &read(anchors_file)?,
                None,
                &options,
            )
            .map_err(|e| Failure::Config(format!("{what} certificate: {e}")))
        }
    }
}
