//! `[provisioning]`: the MAF whose keys `bastion serve` accepts on its TLS listener
//! (TS-0003 8.2.2.3, the CSE as Target MAF Client). Off unless `maf-url` is set; then a
//! PSK identity `RelativeKeyID@<maf-fqdn>` that the credential store lacks is retrieved
//! from the MAF by [`bastion_maf::MafKeySource`] over the CSE's own MAF association,
//! authenticated by `maf-psk-id` (the CSE's KmID) with the Km in `maf-psk-file`
//! (owner-only, hex), or by `maf-certificate-file`/`maf-key-file` against the trust
//! anchors of `maf-ca-file`. The CSE speaks as its CSE-ID, which the MAF must have
//! bound to that credential. Files are read relative to the data directory.
//!
//! Km is kept out of the listener's credential store on purpose: a key in that store
//! opens the CSE's own listener, and Km must open only the MAF.

use crate::client_tls::{client_from_files, ClientCredentialFiles};
pub use crate::provisioning::ProvisioningSection;
use crate::settings::Settings;
use crate::Failure;
use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_maf::{MafClient, MafKeySource, SourceOptions};
use bastion_tls::RemotePskSource;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Problems of a `[provisioning]` section; `tls_psk` is whether the TLS listener takes
/// PSKs (`None`: no TLS listener).
pub fn validate(p: &ProvisioningSection, tls_psk: Option<bool>) -> Vec<String> {
    let mut problems = Vec::new();
    if p.maf_only() == ProvisioningSection::default() {
        return problems;
    }
    let Some(url) = &p.maf_url else {
        problems.push("provisioning: maf-url is required by the other maf-* keys".to_owned());
        return problems;
    };
    if !url.to_ascii_lowercase().starts_with("https://") {
        problems.push(format!(
            "provisioning maf-url: {url:?} is not an https:// URL"
        ));
    }
    match &p.maf_fqdn {
        None => problems.push("provisioning: maf-fqdn is required with maf-url".to_owned()),
        Some(fqdn) if bastion_keys::KeyIdentifier::new("x", fqdn).is_err() => {
            problems.push(format!("provisioning maf-fqdn: {fqdn:?} is not an FQDN"))
        }
        Some(_) => {}
    }
    let psk = p.maf_psk_id.is_some() || p.maf_psk_file.is_some();
    let cert = [&p.maf_certificate_file, &p.maf_key_file, &p.maf_ca_file];
    let certificate = cert.iter().any(|f| f.is_some());
    match (psk, certificate) {
        (true, true) => problems
            .push("provisioning: give maf-psk-id or maf-certificate-file, not both".to_owned()),
        (false, false) => problems.push(
            "provisioning: the CSE's MAF credential is required: maf-psk-id and maf-psk-file, \
             or maf-certificate-file, maf-key-file and maf-ca-file"
                .to_owned(),
        ),
        (true, false) if p.maf_psk_id.is_none() || p.maf_psk_file.is_none() => {
            problems.push("provisioning: maf-psk-id and maf-psk-file go together".to_owned())
        }
        (false, true) if cert.iter().any(|f| f.is_none()) => problems.push(
            "provisioning: maf-certificate-file, maf-key-file and maf-ca-file go together"
                .to_owned(),
        ),
        _ => {}
    }
    if let Some(ms) = p.maf_timeout_ms {
        if !(1..=60_000).contains(&ms) {
            problems.push("provisioning maf-timeout-ms: must be 1 to 60000".to_owned());
        }
    }
    if tls_psk != Some(true) {
        problems.push(
            "provisioning: MAF keys are PSKs; the [tls] listener must accept \"psk\"".to_owned(),
        );
    }
    problems
}

/// The key source of `[provisioning]`, or `None` when it is not configured. Called
/// inside the runtime that will run the retrievals.
pub fn remote_psk(settings: &Settings) -> Result<Option<Arc<dyn RemotePskSource>>, Failure> {
    let Some(p) = settings.provisioning.maf.as_ref() else {
        return Ok(None);
    };
    let (Some(url), Some(fqdn)) = (&p.maf_url, &p.maf_fqdn) else {
        return Err(Failure::Config(
            "provisioning: maf-url needs maf-fqdn".into(),
        ));
    };
    let path = |f: &Path| settings.data_path(f);
    let files = match (&p.maf_psk_id, &p.maf_psk_file) {
        (Some(km_id), Some(file)) => ClientCredentialFiles::Psk {
            identity: km_id,
            key_file: Path::new(file),
            any_identity: false,
        },
        _ => {
            let (Some(cert), Some(key), Some(ca)) =
                (&p.maf_certificate_file, &p.maf_key_file, &p.maf_ca_file)
            else {
                return Err(Failure::Config("provisioning: no MAF credential".into()));
            };
            ClientCredentialFiles::Certificate {
                chain_file: Path::new(cert),
                key_file: Path::new(key),
                anchors_file: Path::new(ca),
            }
        }
    };
    let tls = client_from_files(files, path, "provisioning maf")?;
    let server_name = p.maf_server_name.clone().unwrap_or_else(|| fqdn.clone());
    let connector = TlsConnector::new(tls).with_server_name(server_name);
    let wait = Duration::from_millis(p.maf_timeout_ms.unwrap_or(3_000).max(1) as u64);
    let client = Client::with_connector(
        Arc::new(connector),
        ClientConfig {
            timeout: wait,
            ..ClientConfig::default()
        },
    );
    let maf = MafClient::over(client, url, fqdn, &settings.cse_id);
    tracing::info!(maf = %url, maf_fqdn = %fqdn, "MAF-distributed keys accepted on the TLS listener");
    Ok(Some(Arc::new(MafKeySource::new(
        maf,
        tokio::runtime::Handle::current(),
        SourceOptions {
            wait,
            ..SourceOptions::default()
        },
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk_section() -> ProvisioningSection {
        ProvisioningSection {
            maf_url: Some("https://maf.example.com:8445".into()),
            maf_fqdn: Some("maf.example.com".into()),
            maf_psk_id: Some("cse-in@maf.example.com".into()),
            maf_psk_file: Some("maf.km".into()),
            ..ProvisioningSection::default()
        }
    }

    #[test]
    fn a_complete_section_over_a_psk_listener_is_valid() {
        assert!(validate(&psk_section(), Some(true)).is_empty());
        assert!(validate(&ProvisioningSection::default(), None).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let mut s = psk_section();
        s.maf_url = Some("http://maf.example.com".into());
        s.maf_fqdn = Some("not a name".into());
        s.maf_psk_file = None;
        s.maf_timeout_ms = Some(0);
        assert_eq!(
            validate(&s, Some(false)),
            vec![
                "provisioning maf-url: \"http://maf.example.com\" is not an https:// URL",
                "provisioning maf-fqdn: \"not a name\" is not an FQDN",
                "provisioning: maf-psk-id and maf-psk-file go together",
                "provisioning maf-timeout-ms: must be 1 to 60000",
                "provisioning: MAF keys are PSKs; the [tls] listener must accept \"psk\"",
            ]
        );
        let both = ProvisioningSection {
            maf_certificate_file: Some("c.pem".into()),
            ..psk_section()
        };
        assert_eq!(
            validate(&both, Some(true)),
            vec!["provisioning: give maf-psk-id or maf-certificate-file, not both"]
        );
        let no_url = ProvisioningSection {
            maf_url: None,
            ..psk_section()
        };
        assert_eq!(
            validate(&no_url, Some(true)),
            vec!["provisioning: maf-url is required by the other maf-* keys"]
        );
    }
}
