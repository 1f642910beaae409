//! `m2m:securityInfo` (TS-0004 data types; TS-0003 7.3; digest §10): the content of the
//! NOTIFY exchanged between a hosting CSE (or an originator AE) and a Dynamic Authorization
//! Server AE, and the Token Request Information (`tqf`) of a 4103 response.
//!
//! Only the dynamic-authorization types are modelled: `sit` 1 (request, member `dreq`) and
//! `sit` 2 (response, member `dres`). The other `securityInfoType` values (ESPrim key
//! registration, AuthorRelMapRecord, ...) parse as [`SecurityInfoError::UnsupportedType`]
//! so a receiver can answer them precisely.
//!
//! JSON root name: `m2m:seci` ([`SECURITY_INFO_ROOT`], core-bindings.md §1 `pc` wrappers).
//! Parsing is strict: unknown members are errors (`deny_unknown_fields`), and timestamps
//! must be oneM2M timestamps (TS-0004 §6.3.3). Pure: no I/O.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The JSON root name of a securityInfo in `pc`.
pub const SECURITY_INFO_ROOT: &str = "m2m:seci";

/// `sit` of a Dynamic Authorization Request.
pub const SIT_DAS_REQUEST: u64 = 1;
/// `sit` of a Dynamic Authorization Response.
pub const SIT_DAS_RESPONSE: u64 = 2;
/// Highest `securityInfoType` value defined by TS-0004 (1..=8).
const SIT_MAX_DEFINED: u64 = 8;

/// Why a securityInfo (or token request information) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityInfoError {
    /// `pc` is not exactly `{"m2m:seci": {...}}`.
    #[error("content is not a single {SECURITY_INFO_ROOT} object")]
    NotSecurityInfo,
    /// `sit` absent or not an unsigned integer.
    #[error("sit missing or not a number")]
    MissingType,
    /// `sit` is not a defined securityInfoType.
    #[error("sit {0} is not a securityInfoType")]
    InvalidType(u64),
    /// `sit` is defined but not one of the dynamic-authorization types.
    #[error("securityInfo type {0} is not supported")]
    UnsupportedType(u64),
    /// The member carrying the payload does not fit `sit` (missing, or the other one).
    #[error("sit {sit} needs {member} and nothing else")]
    Inconsistent { sit: u64, member: &'static str },
    /// A member is malformed or unknown; the text is serde's, shortened.
    #[error("malformed securityInfo: {0}")]
    Malformed(String),
    /// A timestamp member is not a oneM2M timestamp.
    #[error("{0} is not a oneM2M timestamp")]
    BadTimestamp(&'static str),
}

/// `m2m:securityInfo`, restricted to the dynamic-authorization types.
#[derive(Clone, Debug, PartialEq)]
pub enum SecurityInfo {
    /// `sit` = 1 with `dreq`.
    DasRequest(DynAuthDasRequest),
    /// `sit` = 2 with `dres`.
    DasResponse(DynAuthDasResponse),
}

/// The wire shape, before `sit` and its member are checked for consistency.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurityInfo {
    sit: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dreq: Option<DynAuthDasRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dres: Option<DynAuthDasResponse>,
}

/// `ipAddress` of `oip`: one of `ip4` / `ip6`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginatorIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
}

/// `m2m:dynAuthDasRequest` (TS-0003 7.3.2.2 step 3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynAuthDasRequest {
    /// `or`: the originator of the request being authorized (mandatory).
    pub or: String,
    /// `trt`: targeted resource type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trt: Option<u64>,
    /// `op`: the operation number (m2m:operation, mandatory).
    pub op: u64,
    /// `oip`: the originator's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oip: Option<OriginatorIp>,
    /// `olo`: the originator's location (m2m:locationRegion), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub olo: Option<Value>,
    /// `orid`: the originator's Role-IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orid: Vec<String>,
    /// `rts`: request timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rts: Option<String>,
    /// `trid`: targeted resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trid: Option<String>,
    /// `ppl`: proposed privileges lifetime (a timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppl: Option<String>,
    /// `rfa`: Role-IDs taken from the applicable ACPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rfa: Vec<String>,
    /// `tids`: Token-IDs whose tokens are asked for (TS-0003 7.3.2.3 step 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tids: Vec<String>,
}

/// `dynamicACPInfo` (`dai`) of a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicAcpInfo {
    /// `gp`: granted privileges, an `m2m:setOfAcrs` kept as raw JSON (the CSE's PDP parses it).
    pub gp: Value,
    /// `pl`: privileges lifetime, a oneM2M timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pl: Option<String>,
}

/// `m2m:dynAuthDasResponse` (TS-0003 7.3.2.2 step 4). Neither member means "denied".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynAuthDasResponse {
    /// `dai`: dynamic ACP information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dai: Option<DynamicAcpInfo>,
    /// `tkns`: tokens (JWS compact serializations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tkns: Vec<String>,
}

impl DynAuthDasResponse {
    /// True when the response grants nothing.
    pub fn is_denial(&self) -> bool {
        self.dai.is_none() && self.tkns.is_empty()
    }
}

/// One entry of `dasi`: a DAS Server to ask and what to ask it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasInfo {
    /// `uri`: the DAS Server's URI.
    pub uri: String,
    /// `dreq`: the request information in plain form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dreq: Option<DynAuthDasRequest>,
    /// `sdr`: the request information as ESData (kept opaque; Bastion does not produce it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdr: Option<Value>,
}

/// `m2m:dynAuthTokenReqInfo`: the `tqf` of a 4103 response (TS-0003 7.3.2.3 step 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynAuthTokenReqInfo {
    /// `dasi`: the DAS Servers the originator may ask.
    pub dasi: Vec<DasInfo>,
}

fn malformed(e: serde_json::Error) -> SecurityInfoError {
    let mut text = e.to_string();
    if text.len() > 120 {
        let mut cut = 120;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    SecurityInfoError::Malformed(text)
}

fn check_timestamp(value: Option<&str>, name: &'static str) -> Result<(), SecurityInfoError> {
    match value {
        Some(t) if Timestamp::parse(t).is_none() => Err(SecurityInfoError::BadTimestamp(name)),
        _ => Ok(()),
    }
}

impl DynAuthDasRequest {
    /// Checks what serde cannot: timestamp formats.
    pub fn validate(&self) -> Result<(), SecurityInfoError> {
        check_timestamp(self.rts.as_deref(), "rts")?;
        check_timestamp(self.ppl.as_deref(), "ppl")
    }
}

impl DynAuthDasResponse {
    /// Checks what serde cannot: the `pl` timestamp format.
    pub fn validate(&self) -> Result<(), SecurityInfoError> {
        check_timestamp(self.dai.as_ref().and_then(|d| d.pl.as_deref()), "pl")
    }
}

impl DynAuthTokenReqInfo {
    /// Parses a `tqf` value strictly.
    pub fn from_value(value: &Value) -> Result<DynAuthTokenReqInfo, SecurityInfoError> {
        let info = DynAuthTokenReqInfo::deserialize(value).map_err(malformed)?;
        for entry in &info.dasi {
            if let Some(dreq) = &entry.dreq {
                dreq.validate()?;
            }
        }
        Ok(info)
    }

    /// The JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl SecurityInfo {
    /// The `sit` of this securityInfo.
    pub fn sit(&self) -> u64 {
        match self {
            SecurityInfo::DasRequest(_) => SIT_DAS_REQUEST,
            SecurityInfo::DasResponse(_) => SIT_DAS_RESPONSE,
        }
    }

    /// Parses the securityInfo object (the value under `m2m:seci`). `sit` is read first,
    /// so an unsupported type is reported as such even if its members are unknown here.
    pub fn from_value(value: &Value) -> Result<SecurityInfo, SecurityInfoError> {
        let obj = value
            .as_object()
            .ok_or_else(|| SecurityInfoError::Malformed("securityInfo is not an object".into()))?;
        let sit = match obj.get("sit") {
            Some(v) => v.as_u64().ok_or(SecurityInfoError::MissingType)?,
            None => return Err(SecurityInfoError::MissingType),
        };
        match sit {
            SIT_DAS_REQUEST | SIT_DAS_RESPONSE => {}
            1..=SIT_MAX_DEFINED => return Err(SecurityInfoError::UnsupportedType(sit)),
            _ => return Err(SecurityInfoError::InvalidType(sit)),
        }
        let raw = RawSecurityInfo::deserialize(value).map_err(malformed)?;
        match (raw.sit, raw.dreq, raw.dres) {
            (SIT_DAS_REQUEST, Some(dreq), None) => {
                dreq.validate()?;
                Ok(SecurityInfo::DasRequest(dreq))
            }
            (SIT_DAS_RESPONSE, None, Some(dres)) => {
                dres.validate()?;
                Ok(SecurityInfo::DasResponse(dres))
            }
            (SIT_DAS_REQUEST, _, _) => Err(SecurityInfoError::Inconsistent {
                sit,
                member: "dreq",
            }),
            _ => Err(SecurityInfoError::Inconsistent {
                sit,
                member: "dres",
            }),
        }
    }

    /// Parses a whole `pc`: exactly one member, [`SECURITY_INFO_ROOT`].
    pub fn from_pc(pc: &Value) -> Result<SecurityInfo, SecurityInfoError> {
        match pc.as_object() {
            Some(map) if map.len() == 1 => match map.get(SECURITY_INFO_ROOT) {
                Some(inner) => SecurityInfo::from_value(inner),
                None => Err(SecurityInfoError::NotSecurityInfo),
            },
            _ => Err(SecurityInfoError::NotSecurityInfo),
        }
    }

    /// The securityInfo object (without the root name).
    pub fn to_value(&self) -> Value {
        let raw = match self {
            SecurityInfo::DasRequest(r) => RawSecurityInfo {
                sit: SIT_DAS_REQUEST,
                dreq: Some(r.clone()),
                dres: None,
            },
            SecurityInfo::DasResponse(r) => RawSecurityInfo {
                sit: SIT_DAS_RESPONSE,
                dreq: None,
                dres: Some(r.clone()),
            },
        };
        serde_json::to_value(raw).unwrap_or(Value::Null)
    }

    /// The whole `pc`: `{"m2m:seci": {...}}`.
    pub fn to_pc(&self) -> Value {
        let mut map = Map::new();
        map.insert(SECURITY_INFO_ROOT.to_owned(), self.to_value());
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> DynAuthDasRequest {
        DynAuthDasRequest {
            or: "//bastion.example/id-in/Cae1".into(),
            trt: Some(3),
            op: 2,
            oip: Some(OriginatorIp {
                ip4: Some("192.0.2.7".into()),
                ip6: None,
            }),
            olo: None,
            orid: vec!["r1@roles.example".into()],
            rts: Some("20250102T030405".into()),
            trid: Some("/id-in/cnt1".into()),
            ppl: Some("20250102T040405".into()),
            rfa: vec![],
            tids: vec![],
        }
    }

    #[test]
    fn ts0003_7_3_2_2_request_round_trip_uses_short_names() {
        let info = SecurityInfo::DasRequest(request());
        let pc = info.to_pc();
        assert_eq!(
            pc,
            json!({"m2m:seci": {"sit": 1, "dreq": {
                "or": "//bastion.example/id-in/Cae1", "trt": 3, "op": 2,
                "oip": {"ip4": "192.0.2.7"}, "orid": ["r1@roles.example"],
                "rts": "20250102T030405", "trid": "/id-in/cnt1", "ppl": "20250102T040405"
            }}})
        );
        assert_eq!(SecurityInfo::from_pc(&pc), Ok(info));
    }

    #[test]
    fn ts0003_7_3_2_2_response_round_trip() {
        let info = SecurityInfo::DasResponse(DynAuthDasResponse {
            dai: Some(DynamicAcpInfo {
                gp: json!({"acr": [{"acor": ["all"], "acop": 2}]}),
                pl: Some("20250102T040405".into()),
            }),
            tkns: vec!["a.b.c".into()],
        });
        let pc = info.to_pc();
        assert_eq!(
            pc,
            json!({"m2m:seci": {"sit": 2, "dres": {
                "dai": {"gp": {"acr": [{"acor": ["all"], "acop": 2}]}, "pl": "20250102T040405"},
                "tkns": ["a.b.c"]
            }}})
        );
        assert_eq!(SecurityInfo::from_pc(&pc), Ok(info));
        let empty = SecurityInfo::DasResponse(DynAuthDasResponse::default());
        assert_eq!(empty.to_pc(), json!({"m2m:seci": {"sit": 2, "dres": {}}}));
    }

    #[test]
    fn unknown_members_and_bad_shapes_are_rejected() {
        let extra = json!({"sit": 1, "dreq": {"or": "Cae", "op": 2, "xyz": 1}});
        assert!(matches!(
            SecurityInfo::from_value(&extra),
            Err(SecurityInfoError::Malformed(_))
        ));
        let extra_top = json!({"sit": 2, "dres": {}, "foo": 1});
        assert!(matches!(
            SecurityInfo::from_value(&extra_top),
            Err(SecurityInfoError::Malformed(_))
        ));
        let no_or = json!({"sit": 1, "dreq": {"op": 2}});
        assert!(matches!(
            SecurityInfo::from_value(&no_or),
            Err(SecurityInfoError::Malformed(_))
        ));
        assert_eq!(
            SecurityInfo::from_value(&json!({"dreq": {}})),
            Err(SecurityInfoError::MissingType)
        );
        assert_eq!(
            SecurityInfo::from_value(&json!({"sit": "1"})),
            Err(SecurityInfoError::MissingType)
        );
        assert_eq!(
            SecurityInfo::from_value(&json!({"sit": 3, "whatever": 1})),
            Err(SecurityInfoError::UnsupportedType(3))
        );
        assert_eq!(
            SecurityInfo::from_value(&json!({"sit": 9})),
            Err(SecurityInfoError::InvalidType(9))
        );
        assert_eq!(
            SecurityInfo::from_value(&json!({"sit": 1, "dres": {}})),
            Err(SecurityInfoError::Inconsistent {
                sit: 1,
                member: "dreq"
            })
        );
        assert_eq!(
            SecurityInfo::from_pc(&json!({"m2m:sgn": {}})),
            Err(SecurityInfoError::NotSecurityInfo)
        );
        assert_eq!(
            SecurityInfo::from_pc(&json!({"m2m:seci": {"sit": 2, "dres": {}}, "x": 1})),
            Err(SecurityInfoError::NotSecurityInfo)
        );
    }

    #[test]
    fn timestamps_are_checked() {
        let bad = json!({"sit": 1, "dreq": {"or": "Cae", "op": 2, "rts": "yesterday"}});
        assert_eq!(
            SecurityInfo::from_value(&bad),
            Err(SecurityInfoError::BadTimestamp("rts"))
        );
        let bad_pl = json!({"sit": 2, "dres": {"dai": {"gp": {}, "pl": "2025"}}});
        assert_eq!(
            SecurityInfo::from_value(&bad_pl),
            Err(SecurityInfoError::BadTimestamp("pl"))
        );
    }

    #[test]
    fn ts0003_7_3_2_3_token_request_info_round_trip() {
        let tqf = json!({"dasi": [{"uri": "http://das.example:9000/das",
            "dreq": {"or": "Cae1", "op": 1, "trid": "/id-in/cnt1"}}]});
        let info = DynAuthTokenReqInfo::from_value(&tqf).expect("valid tqf");
        assert_eq!(info.dasi[0].uri, "http://das.example:9000/das");
        assert_eq!(info.dasi[0].dreq.as_ref().map(|d| d.op), Some(1));
        assert_eq!(info.to_value(), tqf);
        assert!(DynAuthTokenReqInfo::from_value(&json!({"dasi": [{"url": "x"}]})).is_err());
    }
}
