//! How `bastion serve` reaches DAS Servers (TS-0003 7.3.2.2 step 3): builds the
//! [`bastion_das::CseConsultant`] from `[authorization]`.
//!
//! A `dap` with `https://` is reached over a security association whose peer is checked
//! to be the configured DAS Server AE (`das-id`):
//!
//! * `das-psk-id`: TLS-PSK with a KpsaID from the `[tls]` credential store, which must
//!   be bound there to `das-id` (only a holder of that key can complete the handshake).
//!   The store is the listener's own and is re-read when it changes: once the PSK is
//!   revoked there, every `https://` consultation fails (and grants nothing) before any
//!   byte is sent, kept-alive connections included;
//! * `das-certificate-file`/`das-key-file`/`das-ca-file`: the certificate framework; the
//!   DAS's certificate must chain to the trust anchors and name `das-id` in its SAN.
//!
//! A `dap` with `http://` is reached in the clear; what it answers counts only as far as
//! it verifies by itself (signed tokens), never as dynamic ACP information.

use crate::settings::Settings;
use crate::Failure;
use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_core::dynamic::{DasAnswer, DasConsultant};
use bastion_das::{CseConsultant, DasAssociation};
use bastion_proto::security_info::DynAuthDasRequest;
use bastion_tls::{Binding, ClientOptions, CredentialRegistry, TlsClient};
use std::sync::Arc;

/// The consultant for this CSE; `registry` is the `[tls]` listener's credential store.
pub fn consultant(
    settings: &Settings,
    registry: Option<&Arc<CredentialRegistry>>,
) -> Result<Arc<dyn DasConsultant>, Failure> {
    let consultant = build(settings, registry)?;
    Ok(match (&settings.authorization.das_psk_id, registry) {
        (Some(kpsa_id), Some(registry)) => Arc::new(UnlessRevoked {
            inner: consultant,
            registry: registry.clone(),
            kpsa_id: kpsa_id.clone(),
        }),
        _ => Arc::new(consultant),
    })
}

/// Refuses `https://` consultations once the PSK is revoked in the credential store.
struct UnlessRevoked {
    inner: CseConsultant,
    registry: Arc<CredentialRegistry>,
    kpsa_id: String,
}

#[async_trait::async_trait]
impl DasConsultant for UnlessRevoked {
    async fn consult(
        &self,
        das_uri: &str,
        request: DynAuthDasRequest,
    ) -> Result<DasAnswer, String> {
        let secure = das_uri
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if secure && self.registry.lookup_psk(&self.kpsa_id).is_none() {
            return Err(format!(
                "the PSK {} shared with the DAS was revoked",
                self.kpsa_id
            ));
        }
        self.inner.consult(das_uri, request).await
    }
}

fn build(
    settings: &Settings,
    registry: Option<&Arc<CredentialRegistry>>,
) -> Result<CseConsultant, Failure> {
    let a = &settings.authorization;
    let association = match &a.das_id {
        None => None,
        Some(das_id) => {
            let tls = tls_client(settings, registry, das_id)?;
            let mut connector = TlsConnector::new(tls);
            if let Some(name) = &a.das_server_name {
                connector = connector.with_server_name(name);
            }
            Some(DasAssociation {
                client: Client::with_connector(Arc::new(connector), ClientConfig::default()),
                das_id: das_id.clone(),
            })
        }
    };
    Ok(CseConsultant::new(
        Client::default(),
        association,
        settings.cse_id.clone(),
    ))
}

fn tls_client(
    settings: &Settings,
    registry: Option<&Arc<CredentialRegistry>>,
    das_id: &str,
) -> Result<TlsClient, Failure> {
    let a = &settings.authorization;
    let options = ClientOptions::default();
    if let Some(kpsa_id) = &a.das_psk_id {
        let Some(registry) = registry else {
            return Err(Failure::Config(
                "authorization das-psk-id needs the [tls] credential store".into(),
            ));
        };
        let Some((key, binding)) = registry.lookup_psk(kpsa_id) else {
            return Err(Failure::Runtime(format!(
                "authorization das-psk-id: no active PSK {kpsa_id} in the credential store"
            )));
        };
        if binding != Binding::Ae(das_id.to_owned()) {
            return Err(Failure::Config(format!(
                "authorization das-psk-id: {kpsa_id} is bound to {:?}, not to das-id {das_id}",
                binding.originator()
            )));
        }
        return TlsClient::psk(kpsa_id, key, &options)
            .map_err(|e| Failure::Config(format!("authorization das-psk-id: {e}")));
    }
    let (Some(cert), Some(key), Some(ca)) =
        (&a.das_certificate_file, &a.das_key_file, &a.das_ca_file)
    else {
        return Err(Failure::Config(
            "authorization das-id needs das-psk-id or das-certificate-file".into(),
        ));
    };
    let read = |p: &str| {
        let path = settings.data_path(std::path::Path::new(p));
        std::fs::read_to_string(&path)
            .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))
    };
    let key_pem =
        bastion_tls::secret::read_secret_text(&settings.data_path(std::path::Path::new(key)))
            .map_err(|e| Failure::Runtime(format!("authorization das-key-file: {e}")))?;
    TlsClient::certificate(&read(cert)?, &key_pem, &read(ca)?, Some(das_id), &options)
        .map_err(|e| Failure::Config(format!("authorization DAS certificate: {e}")))
}
