//! `[registrar]`: the CSE this one registers with (TS-0001 10.1.1.2; docs/federation.md).
//!
//! Owns the section as written ([`RegistrarSection`]), its validation into
//! [`RegistrarSettings`], the client that reaches the registrar (plain HTTP, or a TLS
//! security association with a PSK from the credential store or a certificate), and the
//! registration task: CREATE `<remoteCSE>` at the registrar (4117, already registered:
//! UPDATE its `poa` instead), then the local `<remoteCSE>` of the registrar, retried with
//! backoff until it succeeds. Nothing secret is ever logged.

use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_core::Cse;
use bastion_proto::clock::{Clock, SystemClock};
use bastion_proto::{Operation, Request, Response, Rsc};
use bastion_tls::{ClientOptions, CredentialRegistry, StoreKey, TlsClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First wait after a failed registration attempt; doubled up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between registration attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// `[registrar]` as written; every key optional here, checked by [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistrarSection {
    /// The registrar's CSE-ID, SP-relative (`/id-in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cse_id: Option<String>,
    /// The resource name of the registrar's CSEBase (`cse-in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cse_base: Option<String>,
    /// `http://HOST:PORT` or `https://HOST:PORT` of the registrar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// KpsaID of the PSK (its key is read from the credential store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_id: Option<String>,
    /// Client certificate chain, its key and the trust anchor of the registrar (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Name for SNI and the server certificate check when `url` holds an IP literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The credential store holding `psk-id`. Default: `credentials.store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_store: Option<String>,
    /// File holding the store key when `BASTION_CREDENTIALS_KEY` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_key_file: Option<String>,
}

/// How this CSE authenticates to the registrar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrarCredential {
    /// Plain HTTP (loopback or an `insecure` registrar): no association.
    None,
    /// TLS-PSK with the KpsaID's key from the credential store.
    Psk { kpsa_id: String },
    /// TLS with a certificate.
    Certificate {
        certificate_file: PathBuf,
        key_file: PathBuf,
        ca_file: PathBuf,
    },
}

/// The validated `[registrar]`. Relative paths are taken from the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarSettings {
    pub cse_id: String,
    pub cse_base: String,
    pub url: String,
    pub credential: RegistrarCredential,
    pub server_name: Option<String>,
    pub credentials_store: PathBuf,
    pub credentials_key_file: Option<PathBuf>,
}

/// Checks `[registrar]`; `own_cse_id` is this CSE's, `is_in` whether it is an IN-CSE
/// (which has no registrar in its own SP: TS-0001 6.2).
pub fn resolve(
    s: &RegistrarSection,
    own_cse_id: &str,
    is_in: bool,
    validate_cse_id: impl Fn(&str) -> Result<(), String>,
) -> Result<RegistrarSettings, Vec<String>> {
    let mut problems = Vec::new();
    if is_in {
        problems.push("registrar: an IN-CSE has no registrar (use cse-type mn or asn)".to_owned());
    }
    let cse_id = s.cse_id.clone().unwrap_or_default();
    if s.cse_id.is_none() {
        problems.push("registrar: cse-id is required".to_owned());
    } else if let Err(p) = validate_cse_id(&cse_id) {
        problems.push(format!("registrar {p}"));
    } else if cse_id == own_cse_id {
        problems.push("registrar: cse-id is this CSE's own".to_owned());
    }
    let cse_base = s.cse_base.clone().unwrap_or_default();
    if bastion_proto::id::validate_resource_name(&cse_base).is_err() {
        problems.push("registrar: cse-base must be the registrar's CSEBase name".to_owned());
    }
    let url = s.url.clone().unwrap_or_default();
    let https = url.starts_with("https://");
    if !(https || url.starts_with("http://")) || url.parse::<http_uri::Check>().is_err() {
        problems.push("registrar: url must be http://HOST:PORT or https://HOST:PORT".to_owned());
    }
    let cert = (&s.certificate_file, &s.key_file, &s.ca_file);
    let credential = match (&s.psk_id, cert) {
        (Some(id), (None, None, None)) => RegistrarCredential::Psk {
            kpsa_id: id.clone(),
        },
        (None, (Some(c), Some(k), Some(a))) => RegistrarCredential::Certificate {
            certificate_file: PathBuf::from(c),
            key_file: PathBuf::from(k),
            ca_file: PathBuf::from(a),
        },
        (None, (None, None, None)) => RegistrarCredential::None,
        _ => {
            problems.push(
                "registrar: give psk-id, or certificate-file, key-file and ca-file".to_owned(),
            );
            RegistrarCredential::None
        }
    };
    match (&credential, https) {
        (RegistrarCredential::None, true) => {
            problems.push("registrar: an https url needs psk-id or a certificate".to_owned())
        }
        (RegistrarCredential::Psk { .. } | RegistrarCredential::Certificate { .. }, false) => {
            problems.push("registrar: a credential needs an https url".to_owned())
        }
        _ => {}
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RegistrarSettings {
        cse_id,
        cse_base,
        url,
        credential,
        server_name: s.server_name.clone(),
        credentials_store: PathBuf::from(
            s.credentials_store
                .as_deref()
                .unwrap_or(crate::settings::DEFAULT_CREDENTIALS_STORE),
        ),
        credentials_key_file: s.credentials_key_file.as_ref().map(PathBuf::from),
    })
}

/// A minimal URI check (`http::Uri` with a host).
mod http_uri {
    pub struct Check;
    impl std::str::FromStr for Check {
        type Err = ();
        fn from_str(s: &str) -> Result<Check, ()> {
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .ok_or(())?;
            let authority = rest.split('/').next().unwrap_or("");
            if authority.is_empty() || authority.contains(char::is_whitespace) {
                return Err(());
            }
            Ok(Check)
        }
    }
}

impl RegistrarSettings {
    /// The registrar's CSE-ID in absolute form (`//sp/stem`), as a certificate names it.
    pub fn absolute_cse_id(&self, sp_id: &str) -> String {
        if self.cse_id.starts_with("//") {
            self.cse_id.clone()
        } else {
            format!("{sp_id}{}", self.cse_id)
        }
    }

    /// Back to the section, for `bastion config check`.
    pub fn to_section(&self) -> RegistrarSection {
        let text = |p: &Path| p.to_string_lossy().into_owned();
        let (psk_id, certificate_file, key_file, ca_file) = match &self.credential {
            RegistrarCredential::None => (None, None, None, None),
            RegistrarCredential::Psk { kpsa_id } => (Some(kpsa_id.clone()), None, None, None),
            RegistrarCredential::Certificate {
                certificate_file,
                key_file,
                ca_file,
            } => (
                None,
                Some(text(certificate_file)),
                Some(text(key_file)),
                Some(text(ca_file)),
            ),
        };
        RegistrarSection {
            cse_id: Some(self.cse_id.clone()),
            cse_base: Some(self.cse_base.clone()),
            url: Some(self.url.clone()),
            psk_id,
            certificate_file,
            key_file,
            ca_file,
            server_name: self.server_name.clone(),
            credentials_store: Some(text(&self.credentials_store)),
            credentials_key_file: self.credentials_key_file.as_deref().map(text),
        }
    }

    /// The client that reaches the registrar: plain, or with the configured credential
    /// (the PSK's key is looked up in the credential store now). `data_path` resolves
    /// relative file names against the data directory.
    ///
    /// The registrar is authenticated as the configured CSE-ID, not only as a host
    /// (TS-0003 8.1.2.5, 8.2.2.2): its certificate must name `sp_id` + `cse-id` in its
    /// SAN, and a PSK must be bound to that CSE-ID in the credential store.
    pub fn client(
        &self,
        sp_id: &str,
        data_path: impl Fn(&Path) -> PathBuf,
    ) -> Result<Client, String> {
        let absolute_id = self.absolute_cse_id(sp_id);
        let config = ClientConfig::default();
        let options = ClientOptions::default();
        let tls = match &self.credential {
            RegistrarCredential::None => return Ok(Client::new(config)),
            RegistrarCredential::Psk { kpsa_id } => {
                let key_file = self.credentials_key_file.as_deref().map(&data_path);
                let key = StoreKey::from_env_or_file(key_file.as_deref())
                    .map_err(|e| format!("registrar: credential store key: {e}"))?;
                let registry = CredentialRegistry::open(data_path(&self.credentials_store), key)
                    .map_err(|e| format!("registrar: credential store: {e}"))?;
                let (psk, binding) = registry.lookup_psk(kpsa_id).ok_or_else(|| {
                    format!("registrar: no PSK {kpsa_id} in the credential store")
                })?;
                let bound_to_registrar = binding.is_cse()
                    && [self.cse_id.as_str(), absolute_id.as_str()].contains(&binding.originator());
                if !bound_to_registrar {
                    return Err(format!(
                        "registrar: PSK {kpsa_id} is bound to {:?}, not to the registrar {}",
                        binding.originator(),
                        self.cse_id
                    ));
                }
                TlsClient::psk(kpsa_id, psk, &options).map_err(|e| format!("registrar: {e}"))?
            }
            RegistrarCredential::Certificate {
                certificate_file,
                key_file,
                ca_file,
            } => {
                let read = |p: &Path| {
                    let path = data_path(p);
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("registrar: cannot read {}: {e}", path.display()))
                };
                let key_pem = bastion_tls::secret::read_secret_text(&data_path(key_file))
                    .map_err(|e| format!("registrar: {e}"))?;
                TlsClient::certificate(
                    &read(certificate_file)?,
                    &key_pem,
                    &read(ca_file)?,
                    Some(&absolute_id),
                    &options,
                )
                .map_err(|e| format!("registrar: {e}"))?
            }
        };
        let mut connector = TlsConnector::new(tls);
        if let Some(name) = &self.server_name {
            connector = connector.with_server_name(name);
        }
        Ok(Client::with_connector(Arc::new(connector), config))
    }
}

/// Registers with the registrar in the background until it succeeds (backoff from
/// [`RETRY_FIRST`] to [`RETRY_MAX`]), then keeps the local `<remoteCSE>` of the registrar.
/// With `check_every`, it then checks its registration at that period and registers
/// again when the registrar has lost it (TS-0001 10.1.1.2; docs/federation.md).
pub fn spawn(
    cse: Arc<Cse>,
    registrar: RegistrarSettings,
    client: Client,
    check_every: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        register_until_done(&cse, &registrar, &client).await;
        let Some(every) = check_every else { return };
        loop {
            tokio::time::sleep(every).await;
            match check_registration(&cse, &registrar, &client).await {
                Registration::Held => {
                    tracing::debug!(registrar = %registrar.cse_id, "registration checked: held")
                }
                Registration::Lost => {
                    tracing::warn!(
                        registrar = %registrar.cse_id,
                        "the registrar lost this CSE's registration; registering again"
                    );
                    register_until_done(&cse, &registrar, &client).await;
                }
                Registration::Unknown(why) => {
                    tracing::warn!(registrar = %registrar.cse_id, "registration check failed: {why}")
                }
            }
        }
    })
}

/// One registration attempt after another, with backoff, until one succeeds.
async fn register_until_done(cse: &Cse, registrar: &RegistrarSettings, client: &Client) {
    let mut wait = RETRY_FIRST;
    let mut attempt = 1u32;
    loop {
        match register(cse, registrar, client).await {
            Ok(()) => return,
            Err(why) => {
                tracing::warn!(
                    registrar = %registrar.cse_id,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    "registration failed: {why}"
                );
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
        attempt += 1;
    }
}

/// What the registrar says of this CSE's registration.
#[derive(Debug, PartialEq, Eq)]
enum Registration {
    /// Its `<remoteCSE>` of this CSE is there.
    Held,
    /// It answered 4004: the registration is gone (deleted, expired, or the registrar
    /// lost its data).
    Lost,
    /// Unreachable, or another answer: nothing to conclude; checked again later.
    Unknown(String),
}

/// RETRIEVE of this CSE's `<remoteCSE>` at the registrar, as this CSE.
async fn check_registration(
    cse: &Cse,
    registrar: &RegistrarSettings,
    client: &Client,
) -> Registration {
    let own = cse.config().cse_id.clone();
    let to = format!("{}/{}", registrar.cse_base, own.trim_start_matches('/'));
    let req = request(Operation::Retrieve, to, &own, None, None);
    match send(client, &registrar.url, req).await {
        Ok(resp) if resp.rsc == Rsc::Ok => Registration::Held,
        Ok(resp) if resp.rsc == Rsc::NotFound => Registration::Lost,
        Ok(resp) => Registration::Unknown(format!("the registrar answered {}", resp.rsc.code())),
        Err(why) => Registration::Unknown(why),
    }
}

/// Numbers the registrar client's requests: with the start time, each request gets its
/// own request identifier (TS-0001 8.1.2), even several within one second.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A request identifier of this process that no other request of it carries.
fn request_id() -> String {
    let n = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    format!("reg-{}-{n}", SystemClock.timestamp().0)
}

fn request(op: Operation, to: String, fr: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    Request {
        op: Some(op),
        to,
        fr: Some(fr.to_owned()),
        rqi: Some(request_id()),
        rvi: Some("3".into()),
        ty,
        pc,
        ..Request::default()
    }
}

async fn send(client: &Client, url: &str, req: Request) -> Result<Response, String> {
    client
        .send(url, &req)
        .await
        .map_err(|e| format!("registrar not reachable: {e}"))
}

/// One attempt: CREATE (or, when already registered, UPDATE) our `<remoteCSE>` at the
/// registrar, then create or refresh the local `<remoteCSE>` of the registrar.
async fn register(cse: &Cse, registrar: &RegistrarSettings, client: &Client) -> Result<(), String> {
    let config = cse.config();
    let own = config.cse_id.as_str();
    let stem = own.trim_start_matches('/');
    let csr = json!({"m2m:csr": {
        "rn": stem,
        "cb": format!("{own}/{}", config.cse_name),
        "csi": own,
        "cst": config.cse_type.number(),
        "rr": true,
        "poa": config.poa,
        "srv": config.releases,
    }});
    let created = send(
        client,
        &registrar.url,
        request(
            Operation::Create,
            registrar.cse_base.clone(),
            own,
            Some(16),
            Some(csr),
        ),
    )
    .await?;
    match created.rsc {
        Rsc::Created => {
            tracing::info!(registrar = %registrar.cse_id, "registered with the registrar")
        }
        Rsc::OriginatorHasAlreadyRegistered => {
            let update =
                json!({"m2m:csr": {"poa": config.poa, "rr": true, "srv": config.releases}});
            let to = format!("{}/{stem}", registrar.cse_base);
            let updated = send(
                client,
                &registrar.url,
                request(Operation::Update, to, own, None, Some(update)),
            )
            .await?;
            if updated.rsc != Rsc::Updated {
                return Err(format!(
                    "registrar refused the poa update: {}",
                    updated.rsc.code()
                ));
            }
            tracing::info!(registrar = %registrar.cse_id, "registration with the registrar refreshed");
        }
        other => {
            return Err(format!(
                "registrar refused the registration: {}",
                other.code()
            ))
        }
    }
    // The registrar's own description: its CSEBase when readable, else what is configured.
    let mut attrs = Map::new();
    attrs.insert(
        "cb".into(),
        json!(format!("{}/{}", registrar.cse_id, registrar.cse_base)),
    );
    attrs.insert("cst".into(), json!(1));
    attrs.insert("srv".into(), json!(["3"]));
    let base = send(
        client,
        &registrar.url,
        request(
            Operation::Retrieve,
            registrar.cse_base.clone(),
            own,
            None,
            None,
        ),
    )
    .await?;
    if base.rsc == Rsc::Ok {
        let cb = base
            .pc
            .as_ref()
            .and_then(|pc| pc.get("m2m:cb"))
            .cloned()
            .unwrap_or(Value::Null);
        let csi = cb.get("csi").and_then(Value::as_str).unwrap_or("");
        if csi != registrar.cse_id {
            return Err(format!(
                "the registrar's CSEBase reports CSE-ID {csi:?}, not {}",
                registrar.cse_id
            ));
        }
        for key in ["cst", "srv"] {
            if let Some(v) = cb.get(key) {
                attrs.insert(key.into(), v.clone());
            }
        }
    } else {
        tracing::info!(
            rsc = base.rsc.code(),
            "the registrar's CSEBase is not readable; its remoteCSE uses the configured values"
        );
    }
    attrs.insert("rr".into(), json!(true));
    // The registrar is reached where it was configured (with the configured credential).
    attrs.insert("poa".into(), json!([registrar.url]));
    cse.upsert_remote_cse(&registrar.cse_id, attrs)
        .await
        .map_err(|e| format!("local remoteCSE of the registrar: {e}"))?;
    tracing::info!(registrar = %registrar.cse_id, "registrar's remoteCSE is in place");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registrar_request_carries_its_own_request_id() {
        let ids: std::collections::HashSet<String> = (0..100)
            .map(|_| {
                request(Operation::Retrieve, "cse-in".into(), "/id-mn", None, None)
                    .rqi
                    .expect("rqi")
            })
            .collect();
        assert_eq!(ids.len(), 100);
    }
}
