//! The outbound half of the binding family: a [`Transport`] carries one request primitive
//! to a target URI over one protocol and returns the response primitive; [`Schemes`]
//! chooses the transport by the target's URI scheme. [`Client`] is the transport of
//! `http://` (and of `https://` with a [`TlsConnector`](crate::TlsConnector)); an
//! `mqtt://`, `coap://` or `ws://` transport is one more [`Schemes::register`].
//!
//! A target whose scheme no transport serves fails with
//! [`ClientError::UnsupportedScheme`] before anything is sent, as a [`Client`] refuses a
//! scheme its connector does not serve.

use crate::{Client, ClientError};
use async_trait::async_trait;
use bastion_proto::{Request, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// Carries request primitives to targets over one protocol binding.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `req` to `target` (an absolute URI of a scheme this transport serves) and
    /// returns the response primitive.
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError>;
}

#[async_trait]
impl Transport for Client {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        Client::send(self, target, req).await
    }
}

/// The lower-cased URI scheme of `target`, if it has one (`scheme://…`).
pub fn scheme_of(target: &str) -> Option<String> {
    let (scheme, _) = target.split_once("://")?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// Transports by URI scheme. Cheap to clone; clones share the transports.
#[derive(Clone, Default)]
pub struct Schemes {
    by_scheme: HashMap<String, Arc<dyn Transport>>,
}

impl std::fmt::Debug for Schemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut schemes: Vec<_> = self.by_scheme.keys().collect();
        schemes.sort();
        f.debug_struct("Schemes")
            .field("schemes", &schemes)
            .finish()
    }
}

impl Schemes {
    /// No scheme served.
    pub fn new() -> Schemes {
        Schemes::default()
    }

    /// `http://` through a default [`Client`].
    pub fn http() -> Schemes {
        Schemes::new().with("http", Arc::new(Client::default()))
    }

    /// Serves `scheme` (case-insensitive) with `transport`, replacing any before it.
    pub fn register(&mut self, scheme: &str, transport: Arc<dyn Transport>) {
        self.by_scheme
            .insert(scheme.to_ascii_lowercase(), transport);
    }

    /// [`Schemes::register`], by value.
    pub fn with(mut self, scheme: &str, transport: Arc<dyn Transport>) -> Schemes {
        self.register(scheme, transport);
        self
    }

    /// The transport serving `scheme` (lower-case), if any.
    pub fn get(&self, scheme: &str) -> Option<&Arc<dyn Transport>> {
        self.by_scheme.get(scheme)
    }

    /// The transport for `target`: [`ClientError::InvalidTarget`] without a scheme,
    /// [`ClientError::UnsupportedScheme`] when none serves it.
    pub fn transport_for(&self, target: &str) -> Result<&Arc<dyn Transport>, ClientError> {
        let scheme =
            scheme_of(target).ok_or_else(|| ClientError::InvalidTarget(target.to_owned()))?;
        match self.by_scheme.get(&scheme) {
            Some(transport) => Ok(transport),
            None => Err(ClientError::UnsupportedScheme(scheme)),
        }
    }
}

#[async_trait]
impl Transport for Schemes {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        self.transport_for(target)?.send(target, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_proto::Rsc;
    use std::sync::Mutex;

    /// Answers every request with 2000 and records the targets it was given.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    #[async_trait]
    impl Transport for Recording {
        async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
            self.0.lock().expect("lock").push(target.to_owned());
            Ok(Response::new(Rsc::Ok, req.rqi.clone().unwrap_or_default()))
        }
    }

    fn request() -> Request {
        Request {
            rqi: Some("r1".into()),
            ..Request::default()
        }
    }

    #[tokio::test]
    async fn a_registered_scheme_reaches_its_transport() {
        let mqtt = Arc::new(Recording::default());
        let schemes = Schemes::http().with("MQTT", mqtt.clone());
        let resp = schemes
            .send("mqtt://broker.example:1883", &request())
            .await
            .expect("answered");
        assert_eq!(resp.rsc, Rsc::Ok);
        assert_eq!(resp.rqi, "r1");
        // Scheme names are case-insensitive, as URIs'.
        schemes
            .send("Mqtt://broker.example", &request())
            .await
            .expect("answered");
        assert_eq!(
            *mqtt.0.lock().expect("lock"),
            ["mqtt://broker.example:1883", "Mqtt://broker.example"]
        );
    }

    #[tokio::test]
    async fn an_unsupported_scheme_is_refused_before_sending() {
        let mqtt = Arc::new(Recording::default());
        let schemes = Schemes::http().with("mqtt", mqtt.clone());
        let err = schemes
            .send("coap://127.0.0.1:5683/cse", &request())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ClientError::UnsupportedScheme(ref s) if s == "coap"),
            "{err}"
        );
        let err = schemes
            .send("no scheme at all", &request())
            .await
            .expect_err("refused");
        assert!(matches!(err, ClientError::InvalidTarget(_)), "{err}");
        assert!(mqtt.0.lock().expect("lock").is_empty());
    }

    #[test]
    fn schemes_are_read_from_absolute_uris_only() {
        assert_eq!(scheme_of("HTTPS://h:1/p").as_deref(), Some("https"));
        assert_eq!(scheme_of("coap+tcp://h").as_deref(), Some("coap+tcp"));
        assert_eq!(scheme_of("/id-in/cse"), None);
        assert_eq!(scheme_of("1http://h"), None);
        assert_eq!(scheme_of("://h"), None);
    }
}
