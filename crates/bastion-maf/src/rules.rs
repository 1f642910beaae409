//! The records and the rules of the eight client and key registration procedures of the
//! MAF (TS-0003 8.8.2.3–8.8.2.10) and of the MEF (8.3.5.2.3–8.3.5.2.10, the same
//! procedures with MEF names; [`crate::Function`] says which one a state serves),
//! pure: no I/O, no clock (every call takes `now`, Unix seconds), no randomness (new
//! identifiers are handed in). [`crate::Maf`] runs them under its lock and persists the
//! outcome.
//!
//! Who may do what is decided from the caller's authenticated identity (the binding of
//! its MAF security association), never from what it claims:
//!
//! | procedure | allowed to |
//! |---|---|
//! | client registration | any authenticated client, at most [`Limits::registrations_per_client`] live ones |
//! | config retrieval, update, de-registration | the client that made the registration |
//! | key registration | a client with a live registration for the same adminFQDN, at most [`Limits::keys_per_client`] live keys |
//! | key retrieval | a client whose absolute identity is one of the key's targetIDs |
//! | key update, de-registration | the key's Source MAF Client |
//!
//! An expired record is treated as absent by every procedure (4004) and dropped by
//! [`MafState::purge`]. Lifetimes are capped at [`Limits::max_lifetime_secs`].

use std::collections::BTreeMap;

use bastion_keys::Suid;
use bastion_tls::{Binding, PskKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::{Function, MafError};

/// Bounds on what clients may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live client registrations per client identity.
    pub registrations_per_client: usize,
    /// Live key registrations per Source MAF Client.
    pub keys_per_client: usize,
    /// Longest lifetime granted to a registration or key, seconds.
    pub max_lifetime_secs: i64,
    /// Most target IDs of one key (ESData may name several).
    pub max_targets: usize,
    /// Most labels of one record.
    pub max_labels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            registrations_per_client: 4,
            keys_per_client: 64,
            max_lifetime_secs: 7 * 24 * 3600,
            max_targets: 16,
            max_labels: 16,
        }
    }
}

impl Limits {
    /// The operator's bounds: `None` keeps the default. A value out of range is named by
    /// `names` (registrations, keys, lifetime), as the caller's flags or keys spell them.
    pub fn configured(
        registrations: Option<usize>,
        keys: Option<usize>,
        lifetime_secs: Option<i64>,
        names: [&str; 3],
    ) -> Result<Limits, Vec<String>> {
        let d = Limits::default();
        let limits = Limits {
            registrations_per_client: registrations.unwrap_or(d.registrations_per_client),
            keys_per_client: keys.unwrap_or(d.keys_per_client),
            max_lifetime_secs: lifetime_secs.unwrap_or(d.max_lifetime_secs),
            ..d
        };
        let mut problems = Vec::new();
        if !(1..=1024).contains(&limits.registrations_per_client) {
            problems.push(format!("{} must be 1 to 1024", names[0]));
        }
        if !(1..=65_536).contains(&limits.keys_per_client) {
            problems.push(format!("{} must be 1 to 65536", names[1]));
        }
        if !(1..=366 * 86_400).contains(&limits.max_lifetime_secs) {
            problems.push(format!("{} must be 1 to 31622400", names[2]));
        }
        match problems.is_empty() {
            true => Ok(limits),
            false => Err(problems),
        }
    }
}

/// A MAF Client registration record (8.8.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// mafClientRegID, assigned by the MAF.
    pub id: String,
    /// The MAF Client: the identity its association is bound to.
    pub client: Binding,
    /// Unix seconds.
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
}

/// A registered key (8.8.2.7).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRegistration {
    /// RelativeKeyID: hex of KcID when exported, else assigned by the MAF.
    pub relative_key_id: String,
    /// The Source MAF Client.
    pub source: Binding,
    /// The key value (wiped on drop; Debug redacted).
    #[serde(with = "key_hex")]
    pub key: PskKey,
    /// Unix seconds.
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
    #[serde(with = "suid_code")]
    pub suid: Suid,
    /// Absolute AE-IDs / CSE-IDs allowed to retrieve the key.
    pub target_ids: Vec<String>,
}

/// Client registration request (table 8.8.2.3-1), MAF-FQDN already checked.
#[derive(Clone, Debug, Default)]
pub struct RegisterClient {
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
}

/// Key registration request (table 8.8.2.7-1), MAF-FQDN already checked.
#[derive(Clone, Debug)]
pub struct RegisterKey {
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
    pub suid: Suid,
    pub target_ids: Vec<String>,
}

/// Where the key value of a new registration comes from.
#[derive(Debug)]
pub enum KeySource {
    /// Self-generated by the Source MAF Client and sent in the request; the MAF picks the
    /// RelativeKeyID (handed in, unused).
    Sent {
        key: PskKey,
        relative_key_id: String,
    },
    /// Absent from the request: Kc/KcID exported from the MAF session by both ends
    /// (10.3.1); the RelativeKeyID is the hex of KcID (10.3.5).
    Exported(bastion_keys::ExportedKey),
}

/// Proposed changes (8.8.2.5, 8.8.2.9); at least one field is set.
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub expires: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub target_ids: Option<Vec<String>>,
}

/// Every record of one MAF (or MEF).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MafState {
    /// Which function's rules apply (names in reasons, registrable SUIDs); set on open.
    #[serde(skip)]
    function: Function,
    clients: BTreeMap<String, ClientRegistration>,
    keys: BTreeMap<String, KeyRegistration>,
}

/// The absolute form of an identity for comparisons with targetIDs: SP-relative `/x`
/// gains `//<sp_id>`; absolute stays; any other form (an AE-ID-Stem, a Credential-ID)
/// has no absolute form the MAF could know and is kept as written, so it matches no
/// absolute target.
pub fn absolute_identity(sp_id: &str, id: &str) -> String {
    match id.strip_prefix('/') {
        Some(rest) if !rest.starts_with('/') => format!("//{sp_id}/{rest}"),
        _ => id.to_owned(),
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl MafState {
    /// No records, under `function`'s rules.
    pub fn new(function: Function) -> MafState {
        MafState {
            function,
            ..MafState::default()
        }
    }

    /// The function whose rules apply.
    pub fn function(&self) -> Function {
        self.function
    }

    /// `function`'s rules for records loaded from disk.
    pub fn set_function(&mut self, function: Function) {
        self.function = function;
    }

    fn no_registration(&self) -> MafError {
        MafError::NotFound(format!(
            "no such {} Client registration",
            self.function.name
        ))
    }

    /// Drops expired records; returns how many.
    pub fn purge(&mut self, now: i64) -> usize {
        let before = self.clients.len() + self.keys.len();
        self.clients.retain(|_, c| c.expires > now);
        self.keys.retain(|_, k| k.expires > now);
        before - self.clients.len() - self.keys.len()
    }

    /// Number of live client registrations and keys.
    pub fn counts(&self, now: i64) -> (usize, usize) {
        (
            self.clients.values().filter(|c| c.expires > now).count(),
            self.keys.values().filter(|k| k.expires > now).count(),
        )
    }

    /// MAF Client Registration (8.8.2.3): `id` is a fresh mafClientRegID.
    pub fn register_client(
        &mut self,
        limits: &Limits,
        who: &Binding,
        id: String,
        request: RegisterClient,
        now: i64,
    ) -> Result<ClientRegistration, MafError> {
        check_labels(limits, &request.labels)?;
        check_fqdn("adminFQDN", &request.admin_fqdn)?;
        let expires = lifetime(limits, request.expires, now)?;
        let live = self
            .clients
            .values()
            .filter(|c| c.expires > now && c.client == *who)
            .count();
        if live >= limits.registrations_per_client {
            return Err(MafError::LimitReached(format!(
                "at most {} client registrations per {} Client",
                limits.registrations_per_client, self.function.name
            )));
        }
        if self.clients.contains_key(&id) {
            return Err(MafError::Conflict("mafClientRegID in use".into()));
        }
        let record = ClientRegistration {
            id: id.clone(),
            client: who.clone(),
            expires,
            labels: request.labels,
            admin_fqdn: request.admin_fqdn,
        };
        self.clients.insert(id, record.clone());
        Ok(record)
    }

    /// A live registration by its ID, whoever made it: the operator's view.
    pub fn registration(&self, id: &str, now: i64) -> Option<&ClientRegistration> {
        self.clients.get(id).filter(|c| c.expires > now)
    }

    /// MAF Client Configuration Retrieval (8.8.2.4).
    pub fn client_registration(
        &self,
        who: &Binding,
        id: &str,
        now: i64,
    ) -> Result<&ClientRegistration, MafError> {
        let record = self
            .clients
            .get(id)
            .filter(|c| c.expires > now)
            .ok_or_else(|| self.no_registration())?;
        if record.client != *who {
            return Err(MafError::NotYours(format!(
                "the registration belongs to another {} Client",
                self.function.name
            )));
        }
        Ok(record)
    }

    /// MAF Client Registration Update (8.8.2.5): expirationTime and/or labels.
    pub fn update_client(
        &mut self,
        limits: &Limits,
        who: &Binding,
        id: &str,
        update: Update,
        now: i64,
    ) -> Result<ClientRegistration, MafError> {
        if update.target_ids.is_some() {
            return Err(MafError::BadRequest(
                "a client registration has no targetIDs".into(),
            ));
        }
        if update.expires.is_none() && update.labels.is_none() {
            return Err(MafError::BadRequest(
                "give at least one of expirationTime and labels".into(),
            ));
        }
        self.client_registration(who, id, now)?;
        let expires = update
            .expires
            .map(|e| lifetime(limits, e, now))
            .transpose()?;
        if let Some(labels) = &update.labels {
            check_labels(limits, labels)?;
        }
        let missing = self.no_registration();
        let record = self.clients.get_mut(id).ok_or(missing)?;
        if let Some(expires) = expires {
            record.expires = expires;
        }
        if let Some(labels) = update.labels {
            record.labels = labels;
        }
        Ok(record.clone())
    }

    /// MAF Client De-Registration (8.8.2.6). When it was the client's last live
    /// registration, its registered keys end with it.
    pub fn deregister_client(&mut self, who: &Binding, id: &str, now: i64) -> Result<(), MafError> {
        self.client_registration(who, id, now)?;
        self.clients.remove(id);
        let still_registered = self
            .clients
            .values()
            .any(|c| c.expires > now && c.client == *who);
        if !still_registered {
            self.keys.retain(|_, k| k.source != *who);
        }
        Ok(())
    }

    /// MAF Key Registration (8.8.2.7).
    pub fn register_key(
        &mut self,
        limits: &Limits,
        who: &Binding,
        request: RegisterKey,
        source: KeySource,
        now: i64,
    ) -> Result<&KeyRegistration, MafError> {
        check_labels(limits, &request.labels)?;
        check_fqdn("adminFQDN", &request.admin_fqdn)?;
        check_targets(&self.function, limits, request.suid, &request.target_ids)?;
        let expires = lifetime(limits, request.expires, now)?;
        let registered = self
            .clients
            .values()
            .any(|c| c.expires > now && c.client == *who && c.admin_fqdn == request.admin_fqdn);
        if !registered {
            return Err(MafError::NotYours(format!(
                "register with this {} for the adminFQDN first",
                self.function.name
            )));
        }
        let live = self
            .keys
            .values()
            .filter(|k| k.expires > now && k.source == *who)
            .count();
        if live >= limits.keys_per_client {
            return Err(MafError::LimitReached(format!(
                "at most {} registered keys per {} Client",
                limits.keys_per_client, self.function.name
            )));
        }
        let (relative_key_id, key) = match source {
            KeySource::Sent {
                key,
                relative_key_id,
            } => (relative_key_id, key),
            KeySource::Exported(exported) => (
                bastion_keys::hex::encode(exported.key_id()),
                PskKey::new(exported.key())
                    .map_err(|_| MafError::Internal("an exported key is always 32 bytes".into()))?,
            ),
        };
        if self.keys.contains_key(&relative_key_id) {
            return Err(MafError::Conflict(
                "a key with this RelativeKeyID is registered".into(),
            ));
        }
        let record = KeyRegistration {
            relative_key_id: relative_key_id.clone(),
            source: who.clone(),
            key,
            expires,
            labels: request.labels,
            admin_fqdn: request.admin_fqdn,
            suid: request.suid,
            target_ids: request.target_ids,
        };
        Ok(self.keys.entry(relative_key_id).or_insert(record))
    }

    /// MAF Key Retrieval (8.8.2.8): `who`'s absolute identity must be one of the
    /// key's targetIDs.
    pub fn retrieve_key(
        &self,
        sp_id: &str,
        who: &Binding,
        relative_key_id: &str,
        now: i64,
    ) -> Result<&KeyRegistration, MafError> {
        let record = self.live_key(relative_key_id, now)?;
        let me = absolute_identity(sp_id, who.originator());
        if !record.target_ids.iter().any(|t| same(t, &me)) {
            return Err(MafError::NotYours(
                "not a target of this key registration".into(),
            ));
        }
        Ok(record)
    }

    /// MAF Key Registration Update (8.8.2.9).
    pub fn update_key(
        &mut self,
        limits: &Limits,
        who: &Binding,
        relative_key_id: &str,
        update: Update,
        now: i64,
    ) -> Result<&KeyRegistration, MafError> {
        if update.expires.is_none() && update.labels.is_none() && update.target_ids.is_none() {
            return Err(MafError::BadRequest(
                "give at least one of expirationTime, labels and targetIDs".into(),
            ));
        }
        let record = self.own_key(who, relative_key_id, now)?;
        let expires = update
            .expires
            .map(|e| lifetime(limits, e, now))
            .transpose()?;
        if let Some(labels) = &update.labels {
            check_labels(limits, labels)?;
        }
        if let Some(targets) = &update.target_ids {
            check_targets(&self.function, limits, record.suid, targets)?;
        }
        let record = self
            .keys
            .get_mut(relative_key_id)
            .ok_or_else(|| MafError::NotFound("no such key registration".into()))?;
        if let Some(expires) = expires {
            record.expires = expires;
        }
        if let Some(labels) = update.labels {
            record.labels = labels;
        }
        if let Some(targets) = update.target_ids {
            record.target_ids = targets;
        }
        Ok(record)
    }

    /// MAF Key De-Registration (8.8.2.10).
    pub fn deregister_key(
        &mut self,
        who: &Binding,
        relative_key_id: &str,
        now: i64,
    ) -> Result<(), MafError> {
        self.own_key(who, relative_key_id, now)?;
        self.keys.remove(relative_key_id);
        Ok(())
    }

    fn live_key(&self, relative_key_id: &str, now: i64) -> Result<&KeyRegistration, MafError> {
        self.keys
            .get(relative_key_id)
            .filter(|k| k.expires > now)
            .ok_or_else(|| MafError::NotFound("no such key registration".into()))
    }

    fn own_key(
        &self,
        who: &Binding,
        relative_key_id: &str,
        now: i64,
    ) -> Result<&KeyRegistration, MafError> {
        let record = self.live_key(relative_key_id, now)?;
        if record.source != *who {
            return Err(MafError::NotYours(format!(
                "the key was registered by another {} Client",
                self.function.name
            )));
        }
        Ok(record)
    }
}

/// The granted expiry: after `now`, at most `max_lifetime_secs` ahead.
fn lifetime(limits: &Limits, proposed: i64, now: i64) -> Result<i64, MafError> {
    if proposed <= now {
        return Err(MafError::BadRequest(
            "expirationTime is not in the future".into(),
        ));
    }
    Ok(proposed.min(now.saturating_add(limits.max_lifetime_secs)))
}

fn check_labels(limits: &Limits, labels: &[String]) -> Result<(), MafError> {
    if labels.len() > limits.max_labels {
        return Err(MafError::BadRequest(format!(
            "at most {} labels",
            limits.max_labels
        )));
    }
    let printable = |l: &String| {
        !l.is_empty() && l.len() <= 256 && l.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    };
    match labels.iter().all(printable) {
        true => Ok(()),
        false => Err(MafError::BadRequest(
            "a label is 1 to 256 printable ASCII characters".into(),
        )),
    }
}

fn check_fqdn(what: &str, fqdn: &str) -> Result<(), MafError> {
    bastion_keys::KeyIdentifier::new("x", fqdn)
        .map(|_| ())
        .map_err(|_| MafError::BadRequest(format!("{what} {fqdn:?} is not an FQDN")))
}

/// targetIDs (8.8.2.7 step 3, 8.3.5.2.7 step 3): only the function's SUIDs (3x for the
/// MAF, 2x for the MEF; [`Function::suids`]); exactly one absolute
/// AE-ID / CSE-ID for SAEF (32) and ESPrim (33), one or more for ESData (34, 35).
fn check_targets(
    function: &Function,
    limits: &Limits,
    suid: Suid,
    targets: &[String],
) -> Result<(), MafError> {
    let suids = function.suids();
    let code = suid.code();
    if !suids.contains(&code) {
        return Err(MafError::BadRequest(format!(
            "SUID {code} is not {} key usage ({} to {})",
            function.key_origin,
            suids.start(),
            suids.end()
        )));
    }
    // The units digit: 2 SAEF, 3 ESPrim take one target; 4, 5 ESData one or more.
    let many = code % 10 >= 4;
    match (many, targets.len()) {
        (_, 0) => return Err(MafError::BadRequest("targetIDs are required".into())),
        (false, n) if n > 1 => {
            return Err(MafError::BadRequest(format!(
                "SUID {} and {} keys have exactly one target",
                suids.start(),
                suids.start() + 1
            )))
        }
        (true, n) if n > limits.max_targets => {
            return Err(MafError::BadRequest(format!(
                "at most {} targetIDs",
                limits.max_targets
            )))
        }
        _ => {}
    }
    for t in targets {
        let absolute = t.strip_prefix("//").is_some_and(|rest| {
            rest.split('/').count() >= 2
                && rest.split('/').all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                })
        });
        if !absolute {
            return Err(MafError::BadRequest(format!(
                "target {t:?} is not an absolute AE-ID or CSE-ID"
            )));
        }
    }
    Ok(())
}

mod key_hex {
    use bastion_tls::PskKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &PskKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PskKey, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        PskKey::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

mod suid_code {
    use bastion_keys::Suid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(suid: &Suid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(suid.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Suid, D::Error> {
        Suid::from_code(u32::from(u8::deserialize(d)?)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const SP: &str = "sp.example";

    fn device() -> Binding {
        Binding::Ae("Cdevice".into())
    }

    fn cse() -> Binding {
        Binding::Cse("/id-in".into())
    }

    fn registered(state: &mut MafState, who: &Binding) {
        state
            .register_client(
                &Limits::default(),
                who,
                format!("reg-{}", who.originator()),
                RegisterClient {
                    expires: NOW + 3600,
                    labels: vec![],
                    admin_fqdn: "admin.example".into(),
                },
                NOW,
            )
            .unwrap();
    }

    fn key_request(targets: &[&str]) -> RegisterKey {
        RegisterKey {
            expires: NOW + 600,
            labels: vec![],
            admin_fqdn: "admin.example".into(),
            suid: Suid::from_code(32).unwrap(),
            target_ids: targets.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn sent(id: &str) -> KeySource {
        KeySource::Sent {
            key: PskKey::new(&[7; 32]).unwrap(),
            relative_key_id: id.into(),
        }
    }

    #[test]
    fn a_key_goes_only_to_its_target_until_it_expires() {
        let mut state = MafState::default();
        registered(&mut state, &device());
        let limits = Limits::default();
        state
            .register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                sent("k1"),
                NOW,
            )
            .unwrap();
        let got = state.retrieve_key(SP, &cse(), "k1", NOW).unwrap();
        assert_eq!(got.key.expose(), &[7; 32]);
        assert_eq!(got.source, device());
        assert!(matches!(
            state.retrieve_key(SP, &Binding::Cse("/id-other".into()), "k1", NOW),
            Err(MafError::NotYours(_))
        ));
        assert!(matches!(
            state.retrieve_key(SP, &cse(), "k1", NOW + 600),
            Err(MafError::NotFound(_))
        ));
        assert_eq!(state.purge(NOW + 600), 1);
    }

    #[test]
    fn key_registration_needs_a_client_registration_for_the_admin() {
        let mut state = MafState::default();
        let limits = Limits::default();
        assert!(matches!(
            state.register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                sent("k"),
                NOW
            ),
            Err(MafError::NotYours(_))
        ));
        registered(&mut state, &device());
        let mut other_admin = key_request(&["//sp.example/id-in"]);
        other_admin.admin_fqdn = "other.example".into();
        assert!(matches!(
            state.register_key(&limits, &device(), other_admin, sent("k"), NOW),
            Err(MafError::NotYours(_))
        ));
    }

    #[test]
    fn saef_keys_have_exactly_one_absolute_target() {
        let mut state = MafState::default();
        registered(&mut state, &device());
        let limits = Limits::default();
        for (targets, reason) in [
            (vec![], "targetIDs are required"),
            (
                vec!["//sp.example/id-in", "//sp.example/id-mn"],
                "SUID 32 and 33 keys have exactly one target",
            ),
            (
                vec!["/id-in"],
                "target \"/id-in\" is not an absolute AE-ID or CSE-ID",
            ),
        ] {
            match state.register_key(&limits, &device(), key_request(&targets), sent("k"), NOW) {
                Err(MafError::BadRequest(r)) => assert_eq!(r, reason),
                other => panic!("{other:?}"),
            }
        }
        let mut esdata = key_request(&["//sp.example/id-in", "//sp.example/id-mn"]);
        esdata.suid = Suid::from_code(34).unwrap();
        assert!(state
            .register_key(&limits, &device(), esdata, sent("k"), NOW)
            .is_ok());
        let mut not_maf = key_request(&["//sp.example/id-in"]);
        not_maf.suid = Suid::from_code(22).unwrap();
        match state.register_key(&limits, &device(), not_maf, sent("k2"), NOW) {
            Err(MafError::BadRequest(r)) => {
                assert_eq!(r, "SUID 22 is not a MAF-distributed key usage (32 to 35)")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exported_keys_are_named_by_their_kcid_and_never_twice() {
        let mut state = MafState::default();
        registered(&mut state, &device());
        let limits = Limits::default();
        let out: Vec<u8> = (0u8..48).collect();
        let exported = || KeySource::Exported(bastion_keys::ExportedKey::split(&out).unwrap());
        let record = state
            .register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                exported(),
                NOW,
            )
            .unwrap();
        assert_eq!(record.relative_key_id, "000102030405060708090a0b0c0d0e0f");
        assert_eq!(record.key.expose(), &out[16..]);
        assert!(matches!(
            state.register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                exported(),
                NOW
            ),
            Err(MafError::Conflict(_))
        ));
    }

    #[test]
    fn only_the_source_changes_or_removes_a_key() {
        let mut state = MafState::default();
        registered(&mut state, &device());
        let limits = Limits::default();
        state
            .register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                sent("k"),
                NOW,
            )
            .unwrap();
        let retarget = || Update {
            target_ids: Some(vec!["//sp.example/id-mn".into()]),
            ..Update::default()
        };
        assert!(matches!(
            state.update_key(&limits, &cse(), "k", retarget(), NOW),
            Err(MafError::NotYours(_))
        ));
        assert!(matches!(
            state.update_key(&limits, &device(), "k", Update::default(), NOW),
            Err(MafError::BadRequest(_))
        ));
        state
            .update_key(&limits, &device(), "k", retarget(), NOW)
            .unwrap();
        assert!(matches!(
            state.retrieve_key(SP, &cse(), "k", NOW),
            Err(MafError::NotYours(_))
        ));
        assert!(matches!(
            state.deregister_key(&cse(), "k", NOW),
            Err(MafError::NotYours(_))
        ));
        state.deregister_key(&device(), "k", NOW).unwrap();
        assert!(matches!(
            state.retrieve_key(SP, &Binding::Cse("/id-mn".into()), "k", NOW),
            Err(MafError::NotFound(_))
        ));
    }

    #[test]
    fn registrations_are_bounded_capped_and_private() {
        let mut state = MafState::default();
        let limits = Limits {
            registrations_per_client: 2,
            max_lifetime_secs: 100,
            ..Limits::default()
        };
        let request = || RegisterClient {
            expires: NOW + 1000,
            labels: vec!["a".into()],
            admin_fqdn: "admin.example".into(),
        };
        let first = state
            .register_client(&limits, &device(), "r1".into(), request(), NOW)
            .unwrap();
        assert_eq!(first.expires, NOW + 100);
        state
            .register_client(&limits, &device(), "r2".into(), request(), NOW)
            .unwrap();
        assert!(matches!(
            state.register_client(&limits, &device(), "r3".into(), request(), NOW),
            Err(MafError::LimitReached(_))
        ));
        assert!(matches!(
            state.client_registration(&cse(), "r1", NOW),
            Err(MafError::NotYours(_))
        ));
        assert!(matches!(
            state.register_client(
                &limits,
                &cse(),
                "r4".into(),
                RegisterClient {
                    expires: NOW,
                    ..request()
                },
                NOW
            ),
            Err(MafError::BadRequest(_))
        ));
    }

    #[test]
    fn the_last_deregistration_ends_the_clients_keys() {
        let mut state = MafState::default();
        registered(&mut state, &device());
        let limits = Limits::default();
        state
            .register_key(
                &limits,
                &device(),
                key_request(&["//sp.example/id-in"]),
                sent("k"),
                NOW,
            )
            .unwrap();
        state
            .deregister_client(&device(), "reg-Cdevice", NOW)
            .unwrap();
        assert!(matches!(
            state.retrieve_key(SP, &cse(), "k", NOW),
            Err(MafError::NotFound(_))
        ));
    }

    #[test]
    fn the_mef_registers_rspf_provisioned_keys_only_and_speaks_its_name() {
        let mut state = MafState::new(crate::MEF);
        let limits = Limits::default();
        let with_suid = |code: u32, targets: &[&str]| RegisterKey {
            suid: Suid::from_code(code).unwrap(),
            ..key_request(targets)
        };
        match state.register_key(
            &limits,
            &device(),
            with_suid(22, &["//sp.example/id-in"]),
            sent("k"),
            NOW,
        ) {
            Err(MafError::NotYours(r)) => {
                assert_eq!(r, "register with this MEF for the adminFQDN first")
            }
            other => panic!("{other:?}"),
        }
        registered(&mut state, &device());
        for (code, targets, reason) in [
            (
                32,
                vec!["//sp.example/id-in"],
                "SUID 32 is not an RSPF-provisioned key usage (22 to 25)",
            ),
            (
                21,
                vec!["//sp.example/id-in"],
                "SUID 21 is not an RSPF-provisioned key usage (22 to 25)",
            ),
            (
                23,
                vec!["//sp.example/id-in", "//sp.example/id-mn"],
                "SUID 22 and 23 keys have exactly one target",
            ),
        ] {
            match state.register_key(
                &limits,
                &device(),
                with_suid(code, &targets),
                sent("k"),
                NOW,
            ) {
                Err(MafError::BadRequest(r)) => assert_eq!(r, reason),
                other => panic!("{other:?}"),
            }
        }
        state
            .register_key(
                &limits,
                &device(),
                with_suid(22, &["//sp.example/id-in"]),
                sent("k"),
                NOW,
            )
            .unwrap();
        state
            .register_key(
                &limits,
                &device(),
                with_suid(25, &["//sp.example/id-in", "//sp.example/id-mn"]),
                sent("k2"),
                NOW,
            )
            .unwrap();
        assert_eq!(
            state
                .retrieve_key(SP, &cse(), "k", NOW)
                .unwrap()
                .suid
                .code(),
            22
        );
        match state.client_registration(&cse(), "reg-Cdevice", NOW) {
            Err(MafError::NotYours(r)) => {
                assert_eq!(r, "the registration belongs to another MEF Client")
            }
            other => panic!("{other:?}"),
        }
        assert!(state.registration("reg-Cdevice", NOW).is_some());
        assert!(state.registration("reg-Cdevice", NOW + 3600).is_none());
    }

    #[test]
    fn absolute_forms() {
        assert_eq!(absolute_identity(SP, "/id-in"), "//sp.example/id-in");
        assert_eq!(absolute_identity(SP, "//x.example/id"), "//x.example/id");
        assert_eq!(absolute_identity(SP, "Cdevice"), "Cdevice");
    }
}
