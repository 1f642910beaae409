//! The MEF's rules, pure (no I/O, the clock passed in): the enrolment exchange as a state
//! machine consumed at each step, the instructions a profile yields, the enrolment record,
//! and who may fetch which key of it.
//!
//! ```text
//!  ExpectIndications ──indications──► ExpectFinal{issued} ──final──► Finished
//!          │                                 │                         │
//!          └──── final, a repeated X-M2M-RI, a second message ─────────┴──► Abandoned
//! ```
//!
//! Abandoned is final: nothing is recorded for that association, and the MEF closes it.

use bastion_keys::{DerivationInput, DerivedKey, EnrolmentKey, Suid};
use bastion_keystore::KeyName;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::{Profile, Target};
use crate::error::MefError;
use crate::wire::{Final, Indications, InstructionMsg, TargetMsg};

/// Where an association's enrolment exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// Nothing received yet.
    ExpectIndications,
    /// Instructions sent (their `ity`, in order); the final message is awaited.
    ExpectFinal {
        /// The instructions issued.
        issued: Vec<u8>,
    },
    /// The final message was accepted.
    Finished,
    /// A replayed or out-of-order message ended the exchange.
    Abandoned,
}

/// One association's exchange: its state and the request IDs it has seen.
#[derive(Debug)]
pub struct Conversation {
    state: Exchange,
    seen: Vec<String>,
}

/// Request IDs remembered per association; the exchange has two messages, so more
/// means a misbehaving enrolee.
const MAX_MESSAGES: usize = 8;

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            state: Exchange::ExpectIndications,
            seen: Vec::new(),
        }
    }
}

impl Conversation {
    /// The current state.
    pub fn state(&self) -> &Exchange {
        &self.state
    }

    /// Notes request ID `ri`; a repeated one abandons the exchange.
    fn admit(&mut self, ri: &str) -> Result<(), MefError> {
        if self.seen.iter().any(|s| s == ri) || self.seen.len() >= MAX_MESSAGES {
            self.state = Exchange::Abandoned;
            return Err(MefError::Replay(format!("X-M2M-RI {ri:?} seen before")));
        }
        self.seen.push(ri.to_owned());
        Ok(())
    }

    /// Step 1: the indications, answered with the instructions of `profile` the enrolee
    /// said it would follow.
    pub fn indications(
        &mut self,
        ri: &str,
        profile: &Profile,
        indications: Indications,
    ) -> Result<Vec<InstructionMsg>, MefError> {
        self.admit(ri)?;
        match std::mem::replace(&mut self.state, Exchange::Abandoned) {
            Exchange::ExpectIndications => {
                let ins = instructions_for(profile, indications);
                self.state = Exchange::ExpectFinal {
                    issued: ins.iter().map(|i| i.ity).collect(),
                };
                Ok(ins)
            }
            _ => Err(MefError::Replay(
                "indications after the exchange began".into(),
            )),
        }
    }

    /// Step 3: the final message, which must report each issued instruction in order.
    pub fn finish(&mut self, ri: &str, fin: &Final) -> Result<(), MefError> {
        self.admit(ri)?;
        match std::mem::replace(&mut self.state, Exchange::Abandoned) {
            Exchange::ExpectFinal { issued } => {
                let reported: Vec<u8> = fin.res.iter().map(|r| r.ity).collect();
                if reported != issued {
                    return Err(MefError::BadRequest(
                        "the final message must report each instruction, in order".into(),
                    ));
                }
                self.state = Exchange::Finished;
                Ok(())
            }
            Exchange::ExpectIndications => Err(MefError::Replay(
                "final message before the indications".into(),
            )),
            _ => Err(MefError::Replay("second final message".into())),
        }
    }

    /// Marks the exchange abandoned (the record could not be made durable).
    pub fn abandon(&mut self) {
        self.state = Exchange::Abandoned;
    }
}

/// The instructions of `profile` the enrolee indicated it would follow.
pub fn instructions_for(profile: &Profile, indications: Indications) -> Vec<InstructionMsg> {
    use crate::config::InstructionKind::*;
    profile
        .instructions
        .iter()
        .filter(|i| match i.kind {
            CertificateEnrolment => indications.cen,
            MafEnrolment => indications.men,
            RemoteManagement => indications.rmt,
        })
        .map(|i| InstructionMsg {
            ity: i.kind.code(),
            uri: i.uri.clone(),
            crt: i.credential_type,
            tid: None,
        })
        .collect()
}

/// A target an enrolment grants keys to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Enrolment-Target-ID.
    pub id: String,
    /// The identity allowed to fetch.
    pub fetcher: String,
    /// The usage of the key.
    pub suid: u8,
    /// Where the enrolee reaches the target.
    pub uri: String,
}

impl From<&Target> for Grant {
    fn from(t: &Target) -> Grant {
        Grant {
            id: t.id.clone(),
            fetcher: t.fetcher.clone(),
            suid: t.suid.code(),
            uri: t.uri.clone(),
        }
    }
}

impl Grant {
    /// As the enrolee is told of it.
    pub fn message(&self) -> TargetMsg {
        TargetMsg {
            tid: self.id.clone(),
            uri: self.uri.clone(),
            suid: self.suid,
        }
    }
}

/// Where an enrolment's Ke is: in its sealed record, or in the MEF's key store.
#[derive(Clone, PartialEq, Eq)]
pub enum KeHeld {
    /// The bytes, kept in the sealed enrolment record (no `key-store` configured).
    Sealed(KeBytes),
    /// The name of a non-exportable secret in the MEF's key store: the record holds no
    /// key, and derivations run inside the store.
    InStore(KeyName),
}

impl std::fmt::Debug for KeHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeHeld::Sealed(_) => f.write_str("Sealed(<redacted>)"),
            KeHeld::InStore(name) => write!(f, "InStore({name})"),
        }
    }
}

/// An enrolment: Ke under its KeID, for whom, until when, for which targets.
#[derive(Clone)]
pub struct Enrolment {
    /// KeID.
    pub ke_id: String,
    /// Ke, or where it is (never shown).
    pub ke: KeHeld,
    /// The enrolee ID provisioned.
    pub enrolee_id: String,
    /// How the enrolee authenticated (`kpm:<KpmID>` or `certificate:<ID>`), for the log
    /// and the operator's listing.
    pub credential: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; the enrolment and every key derived from it end here (10.7).
    pub expires: i64,
    /// The targets.
    pub grants: Vec<Grant>,
    /// Revoked by the operator.
    pub revoked: bool,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("ke_id", &self.ke_id)
            .field("ke", &self.ke)
            .field("enrolee_id", &self.enrolee_id)
            .field("credential", &self.credential)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("grants", &self.grants)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// A key released to a target, and the enrolee it is bound to.
pub struct Released {
    /// Kuc, or Km for SUID 21.
    pub key: DerivedKey,
    /// The enrolee ID.
    pub enrolee_id: String,
    /// Unix seconds.
    pub expires: i64,
}

/// The key of `enrolment` for `fetcher` and `suid` at `now`. Privilege is judged first,
/// so a target that may not ask learns nothing of the enrolment's state; then
/// revocation, then expiry; only then is `derive` asked for the key (from the bytes, or
/// inside the key store: the I/O stays with the caller).
pub fn release(
    enrolment: &Enrolment,
    fetcher: &str,
    suid: Suid,
    now: i64,
    derive: impl FnOnce(&KeHeld, &DerivationInput) -> Result<DerivedKey, MefError>,
) -> Result<Released, MefError> {
    let grant = enrolment
        .grants
        .iter()
        .find(|g| g.fetcher == fetcher && g.suid == suid.code())
        .ok_or_else(|| {
            MefError::NoPrivilege(format!(
                "{fetcher} may not fetch this enrolment's key for SUID {}",
                suid.code()
            ))
        })?;
    if enrolment.revoked {
        return Err(MefError::Revoked(enrolment.enrolee_id.clone()));
    }
    if now >= enrolment.expires {
        return Err(MefError::Expired);
    }
    let key = derive(&enrolment.ke, &derivation_input(suid, &grant.id)?)?;
    Ok(Released {
        key,
        enrolee_id: enrolment.enrolee_id.clone(),
        expires: enrolment.expires,
    })
}

/// What Ke is MACed over for the key an enrolee and its target share for `suid`: Km
/// with the MAF-ID for 21 (10.3.2), Kuc with the target ID otherwise (10.3.7). One
/// choice for both ends and for Ke in this process or in a key store.
pub fn derivation_input(suid: Suid, target_id: &str) -> Result<DerivationInput, MefError> {
    let input = if suid.code() == 21 {
        DerivationInput::km(target_id)
    } else {
        DerivationInput::kuc(suid, target_id)
    };
    input.map_err(|e| MefError::Internal(format!("derivation refused: {e}")))
}

/// The key an enrolee and its target share for `suid`, from Ke in this process.
pub fn derive_for(ke: &EnrolmentKey, suid: Suid, target_id: &str) -> Result<DerivedKey, MefError> {
    Ok(derivation_input(suid, target_id)?.derive(ke))
}

/// [`derive_for`] from where an enrolment keeps Ke, when the bytes are in the record;
/// a key in a store has to be derived by that store.
pub fn derive_sealed(ke: &KeHeld, input: &DerivationInput) -> Result<DerivedKey, MefError> {
    match ke {
        KeHeld::Sealed(bytes) => Ok(input.derive(&EnrolmentKey::from_array(bytes))),
        KeHeld::InStore(name) => Err(MefError::Internal(format!(
            "enrolment key {name} is in a key store this MEF is not configured with"
        ))),
    }
}

/// Ke as stored: 32 bytes, wiped on drop.
pub type KeBytes = Zeroizing<[u8; 32]>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Instruction, InstructionKind};
    use crate::wire::InstructionResult;

    fn profile() -> Profile {
        Profile {
            enrolee_id: "Csensor1".into(),
            targets: vec!["cse".into()],
            lifetime_seconds: 60,
            instructions: vec![
                Instruction {
                    kind: InstructionKind::CertificateEnrolment,
                    uri: "https://mef.example.com/est".into(),
                    credential_type: None,
                },
                Instruction {
                    kind: InstructionKind::RemoteManagement,
                    uri: "lwm2m:coaps://dm.example.com".into(),
                    credential_type: None,
                },
            ],
        }
    }

    #[test]
    fn the_exchange_runs_indications_then_final_once() {
        let mut c = Conversation::default();
        let ins = c
            .indications(
                "1",
                &profile(),
                Indications {
                    cen: true,
                    ..Indications::default()
                },
            )
            .unwrap();
        assert_eq!(ins.iter().map(|i| i.ity).collect::<Vec<_>>(), vec![1]);
        assert_eq!(c.state(), &Exchange::ExpectFinal { issued: vec![1] });
        let fin = Final {
            res: vec![InstructionResult { ity: 1, ok: true }],
        };
        c.finish("2", &fin).unwrap();
        assert_eq!(c.state(), &Exchange::Finished);
        assert!(matches!(c.finish("3", &fin), Err(MefError::Replay(_))));
        assert_eq!(c.state(), &Exchange::Abandoned);
    }

    #[test]
    fn replays_and_disorder_abandon_the_exchange() {
        let p = profile();
        let mut c = Conversation::default();
        c.indications("1", &p, Indications::default()).unwrap();
        assert!(matches!(
            c.indications("1", &p, Indications::default()),
            Err(MefError::Replay(_))
        ));
        assert_eq!(c.state(), &Exchange::Abandoned);
        // Abandoned stays abandoned, even for a well-formed final with a new RI.
        assert!(matches!(
            c.finish("2", &Final::default()),
            Err(MefError::Replay(_))
        ));

        let mut c = Conversation::default();
        assert!(matches!(
            c.finish("1", &Final::default()),
            Err(MefError::Replay(_))
        ));
        assert!(c.indications("2", &p, Indications::default()).is_err());

        let mut c = Conversation::default();
        c.indications("1", &p, Indications::default()).unwrap();
        assert!(matches!(
            c.indications("2", &p, Indications::default()),
            Err(MefError::Replay(_))
        ));
    }

    #[test]
    fn a_final_must_report_what_was_issued() {
        let mut c = Conversation::default();
        c.indications(
            "1",
            &profile(),
            Indications {
                cen: true,
                rmt: true,
                men: false,
            },
        )
        .unwrap();
        let wrong = Final {
            res: vec![InstructionResult { ity: 3, ok: true }],
        };
        assert!(matches!(
            c.finish("2", &wrong),
            Err(MefError::BadRequest(_))
        ));
        assert_eq!(c.state(), &Exchange::Abandoned);
    }

    fn enrolment() -> Enrolment {
        Enrolment {
            ke_id: "00@mef.example.com".into(),
            ke: KeHeld::Sealed(Zeroizing::new([7u8; 32])),
            enrolee_id: "Csensor1".into(),
            credential: "kpm:dev1@factory.example.com".into(),
            created: 100,
            expires: 200,
            grants: vec![Grant {
                id: "/id-in".into(),
                fetcher: "/id-in".into(),
                suid: 22,
                uri: "https://cse.example.com/cse-in".into(),
            }],
            revoked: false,
        }
    }

    #[test]
    fn release_checks_privilege_then_revocation_then_expiry() {
        let suid = Suid::from_code(22).unwrap();
        let e = enrolment();
        let release = |e: &Enrolment, fetcher: &str, suid: Suid, now: i64| {
            release(e, fetcher, suid, now, derive_sealed)
        };
        let r = release(&e, "/id-in", suid, 150).unwrap();
        let ke = EnrolmentKey::from_slice(&[7u8; 32]).unwrap();
        let expected = bastion_keys::derive_kuc(&ke, suid, "/id-in").unwrap();
        assert!(!format!("{e:?}").contains("7, 7"));
        assert_eq!(r.key, expected);
        assert_eq!((r.enrolee_id.as_str(), r.expires), ("Csensor1", 200));

        assert!(matches!(
            release(&e, "/id-other", suid, 150),
            Err(MefError::NoPrivilege(_))
        ));
        let other_suid = Suid::from_code(23).unwrap();
        assert!(matches!(
            release(&e, "/id-in", other_suid, 150),
            Err(MefError::NoPrivilege(_))
        ));
        assert!(matches!(
            release(&e, "/id-in", suid, 200),
            Err(MefError::Expired)
        ));
        let mut revoked = e.clone();
        revoked.revoked = true;
        assert!(matches!(
            release(&revoked, "/id-in", suid, 150),
            Err(MefError::Revoked(_))
        ));
        // A stranger learns nothing of the state.
        assert!(matches!(
            release(&revoked, "/id-x", suid, 250),
            Err(MefError::NoPrivilege(_))
        ));
    }

    #[test]
    fn suid_21_releases_km_for_the_maf() {
        let ke = EnrolmentKey::from_slice(&[7u8; 32]).unwrap();
        let km = derive_for(&ke, Suid::from_code(21).unwrap(), "maf.example.com").unwrap();
        assert_eq!(km, bastion_keys::derive_km(&ke, "maf.example.com").unwrap());
    }

    #[test]
    fn a_key_in_a_store_is_not_derived_here() {
        let held = KeHeld::InStore(KeyName::new("mef.ke.00").unwrap());
        let input = derivation_input(Suid::from_code(22).unwrap(), "/id-in").unwrap();
        assert!(matches!(
            derive_sealed(&held, &input),
            Err(MefError::Internal(_))
        ));
        assert_eq!(format!("{held:?}"), "InStore(mef.ke.00)");
        let sealed = KeHeld::Sealed(Zeroizing::new([7u8; 32]));
        assert_eq!(format!("{sealed:?}"), "Sealed(<redacted>)");
    }
}
