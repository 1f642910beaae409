//! The JSON bodies of Bastion's MEF interface (docs/provisioning.md, "the wire"), shared
//! by the MEF, the enrolee (`bastion enrol`) and enrolment targets (the CSE's
//! `MefKeySource`), so the three cannot drift apart. Short names under `sec:`; unknown
//! members are refused, so a typo is an error and not a silent default.

use serde::{Deserialize, Serialize};

/// The path of the enrolment exchange.
pub const ENROLMENT_PATH: &str = "/enrolment";
/// The first segment of the credential fetch path `/fetchCredentials/<KeID>/<SUID>`.
pub const FETCH_SEGMENT: &str = "fetchCredentials";

/// The path an enrolment target RETRIEVEs for `ke_id` and `suid`.
pub fn fetch_path(ke_id: &str, suid: u8) -> String {
    format!("/{FETCH_SEGMENT}/{ke_id}/{suid}")
}

/// Step 1, enrolee → MEF: what the enrolee is willing to do (`sec:enrInd`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indications {
    /// Certificate enrolment.
    #[serde(default)]
    pub cen: bool,
    /// MAF enrolment.
    #[serde(default)]
    pub men: bool,
    /// Remote management.
    #[serde(default)]
    pub rmt: bool,
}

/// One instruction of the MEF's answer to the indications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionMsg {
    /// 1 certificate enrolment, 2 MAF enrolment, 3 remote management.
    pub ity: u8,
    /// Where.
    pub uri: String,
    /// MAF enrolment: 1 symmetric, 2 certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crt: Option<u8>,
    /// The identity the instruction concerns: for a certificate enrolment the absolute
    /// AE-ID or CSE-ID the certificate will name (the CSR's subjectAltName; the RA
    /// certifies it whatever the CSR asks), for a MAF enrolment the MAF-ID that enters
    /// Km (10.3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
}

/// The MEF's answer to the indications (`sec:enrIns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instructions {
    /// In the order the enrolee executes them.
    pub ins: Vec<InstructionMsg>,
    /// The enrolee ID being provisioned: the identity the enrolee's associations with
    /// the targets it enrols at while executing the instructions are bound to (a MAF
    /// binds the Km association to it), known before the final answer repeats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid: Option<String>,
}

/// The outcome of one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionResult {
    /// The instruction's type.
    pub ity: u8,
    /// Whether the enrolee carried it out.
    pub ok: bool,
}

/// Step 3, enrolee → MEF: the outcomes, in the order the instructions came (`sec:enrFin`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Final {
    /// One per instruction.
    #[serde(default)]
    pub res: Vec<InstructionResult>,
}

/// An enrolment target as the enrolee is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetMsg {
    /// Enrolment-Target-ID (enters Kuc).
    pub tid: String,
    /// Where to reach it.
    pub uri: String,
    /// The usage of the key for it.
    pub suid: u8,
}

/// The MEF's answer to the final message (`sec:enr`): the enrolment recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    /// KeID as the MEF computed it.
    pub keid: String,
    /// The enrolee ID provisioned.
    pub eid: String,
    /// The enrolment expiry, oneM2M basic time (UTC).
    pub exp: String,
    /// The enrolment targets.
    pub tgs: Vec<TargetMsg>,
}

/// The answer to a credential fetch (`sec:cred`). Carries a key: build and drop it in
/// wiped buffers, never log it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The KeID asked for.
    pub keid: String,
    /// The SUID asked for.
    pub suid: u8,
    /// The key, 64 lower-case hex characters.
    pub key: zeroize::Zeroizing<String>,
    /// The enrolee the key was provisioned for.
    pub eid: String,
    /// When the key stops being valid (the enrolment expiry), oneM2M basic time.
    pub exp: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("keid", &self.keid)
            .field("suid", &self.suid)
            .field("key", &"<redacted>")
            .field("eid", &self.eid)
            .field("exp", &self.exp)
            .finish()
    }
}

/// Wraps a body under its short name: `{"<name>": body}`.
pub fn wrap<T: Serialize>(name: &str, body: &T) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert(
        name.to_owned(),
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(map)
}

/// The body under `name` of a JSON object with exactly that one member.
pub fn unwrap<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &serde_json::Value,
) -> Result<T, String> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("expected {{\"{name}\": ...}}"))?;
    let inner = object
        .get(name)
        .ok_or_else(|| format!("expected {{\"{name}\": ...}}"))?;
    serde_json::from_value(inner.clone()).map_err(|e| format!("{name}: {e}"))
}

/// Short names of the bodies.
pub mod names {
    /// [`super::Indications`].
    pub const INDICATIONS: &str = "sec:enrInd";
    /// [`super::Instructions`].
    pub const INSTRUCTIONS: &str = "sec:enrIns";
    /// [`super::Final`].
    pub const FINAL: &str = "sec:enrFin";
    /// [`super::Enrolled`].
    pub const ENROLLED: &str = "sec:enr";
    /// [`super::Credential`].
    pub const CREDENTIAL: &str = "sec:cred";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_under_their_names() {
        let v = serde_json::json!({"sec:enrInd": {"cen": true}});
        let i: Indications = unwrap(names::INDICATIONS, &v).unwrap();
        assert_eq!(
            i,
            Indications {
                cen: true,
                men: false,
                rmt: false
            }
        );
        assert_eq!(
            wrap(names::INDICATIONS, &i),
            serde_json::json!({"sec:enrInd": {"cen": true, "men": false, "rmt": false}})
        );
        assert!(unwrap::<Indications>(
            names::INDICATIONS,
            &serde_json::json!({"sec:enrInd": {"cem": true}})
        )
        .is_err());
        assert!(unwrap::<Final>(names::FINAL, &serde_json::json!({"sec:enrInd": {}})).is_err());
    }

    #[test]
    fn a_credential_does_not_show_its_key() {
        let c = Credential {
            keid: "ab@mef.example.com".into(),
            suid: 22,
            key: zeroize::Zeroizing::new("ff".repeat(32)),
            eid: "Csensor1".into(),
            exp: "20261202T150000".into(),
        };
        assert!(!format!("{c:?}").contains("ffff"));
    }
}
