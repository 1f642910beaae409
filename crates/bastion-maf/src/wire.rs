//! The MAF's protocol as oneM2M request and response primitives (TS-0003 8.8.2.3–
//! 8.8.2.10 carried over TS-0009 HTTP), shared by the server and the client, and the
//! MEF's (8.3.5.2.3–8.3.5.2.10) with the roots and `ty` of [`crate::MEF`] (`mef:mcr`,
//! `mef:mcc`, `mef:kr`, `ty` 60003). TS-0032, which defines the resources, was not
//! available: the resources, short names and resource type numbers here are Bastion's
//! (docs/provisioning.md, docs/decisions.md).
//!
//! | procedure | operation | `to` | content |
//! |---|---|---|---|
//! | client registration | CREATE, `ty` 60001 | `<MAF-FQDN>/clients` | `maf:mcr` |
//! | configuration retrieval | RETRIEVE | `<MAF-FQDN>/clients/<mafClientRegID>` | — → `maf:mcc` |
//! | registration update | UPDATE | `<MAF-FQDN>/clients/<mafClientRegID>` | `maf:mcr` |
//! | de-registration | DELETE | `<MAF-FQDN>/clients/<mafClientRegID>` | — |
//! | key registration | CREATE, `ty` [`TY_SYMM_KEY_REG`] | `<MAF-FQDN>/keys` | `maf:kr` |
//! | key retrieval | RETRIEVE | `<MAF-FQDN>/keys/<RelativeKeyID>` | — → `maf:kr` |
//! | key registration update | UPDATE | `<MAF-FQDN>/keys/<RelativeKeyID>` | `maf:kr` |
//! | key de-registration | DELETE | `<MAF-FQDN>/keys/<RelativeKeyID>` | — |

use bastion_tls::Binding;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// `ty` of a key registration CREATE (`<symmKeyReg>`, one type for the MAF and the MEF;
/// TS-0032's number unknown). Client registrations: [`crate::Function::client_reg_ty`].
pub const TY_SYMM_KEY_REG: u64 = 60_002;
/// The collection of client registrations under the MAF-FQDN.
pub const CLIENTS: &str = "clients";
/// The collection of key registrations under the MAF-FQDN.
pub const KEYS: &str = "keys";

/// A client registration, its update and its configuration; which members a message
/// carries depends on the procedure (docs/provisioning.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegMsg {
    /// mafClientRegID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcri: Option<String>,
    /// expirationTime (oneM2M timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub et: Option<String>,
    /// labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    /// adminFQDN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adfq: Option<String>,
    /// MAF Client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcid: Option<String>,
    /// Kind of the MAF Client ID: `ae`, `cse` or `credential-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcik: Option<String>,
    /// The MAF's FQDN (configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
}

/// A key registration, its update and a retrieved key.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegMsg {
    /// RelativeKeyID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rkid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub et: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbl: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adfq: Option<String>,
    /// Security Usage Identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suid: Option<u32>,
    /// targetIDs: absolute AE-IDs / CSE-IDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tids: Option<Vec<String>>,
    /// Key Value, lower-case hex (wiped on drop, never in Debug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyv: Option<Zeroizing<String>>,
    /// Source MAF Client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smci: Option<String>,
    /// Kind of the Source MAF Client ID: `ae`, `cse` or `credential-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smck: Option<String>,
}

impl std::fmt::Debug for KeyRegMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegMsg")
            .field("rkid", &self.rkid)
            .field("et", &self.et)
            .field("suid", &self.suid)
            .field("tids", &self.tids)
            .field("kyv", &self.kyv.as_ref().map(|_| "<redacted>"))
            .field("smci", &self.smci)
            .finish_non_exhaustive()
    }
}

/// `{root: msg}` as primitive content.
pub fn wrap<T: Serialize>(root: &str, msg: &T) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert(
        root.to_owned(),
        serde_json::to_value(msg).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(map)
}

/// The message under `root` of `pc`; the reason when it is missing or malformed.
pub fn unwrap<T: for<'de> Deserialize<'de>>(
    root: &str,
    pc: Option<&serde_json::Value>,
) -> Result<T, String> {
    let object = pc
        .and_then(|v| v.as_object())
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("the content must be one {root} object"))?;
    let inner = object
        .get(root)
        .ok_or_else(|| format!("the content must be one {root} object"))?;
    T::deserialize(inner).map_err(|e| format!("{root}: {e}"))
}

/// The kind written beside an identity (`mcik`, `smck`).
pub fn kind_of(binding: &Binding) -> &'static str {
    match binding {
        Binding::Ae(_) => "ae",
        Binding::Cse(_) => "cse",
        Binding::CredentialId(_) => "credential-id",
    }
}

/// An identity and its kind as a binding, validated; `None` when either is malformed.
pub fn binding_of(kind: &str, id: &str) -> Option<Binding> {
    match kind {
        "ae" => Binding::ae(id).ok(),
        "cse" => Binding::cse(id).ok(),
        "credential-id" => {
            let valid = id.len() <= 256
                && id.split_once('-').is_some_and(|(t, v)| {
                    t.len() == 2
                        && t.bytes().all(|b| b.is_ascii_digit())
                        && !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
                });
            valid.then(|| Binding::CredentialId(id.to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_short_names_and_hide_the_key() {
        let msg = KeyRegMsg {
            rkid: Some("ab".into()),
            suid: Some(32),
            kyv: Some(Zeroizing::new("00ff".into())),
            ..KeyRegMsg::default()
        };
        let pc = wrap(crate::MAF.key_reg_root, &msg);
        assert_eq!(
            pc,
            serde_json::json!({"maf:kr": {"rkid": "ab", "suid": 32, "kyv": "00ff"}})
        );
        assert!(!format!("{msg:?}").contains("00ff"));
        let back: KeyRegMsg = unwrap(crate::MAF.key_reg_root, Some(&pc)).unwrap();
        assert_eq!(back, msg);
        assert_eq!(
            unwrap::<KeyRegMsg>("maf:kr", Some(&serde_json::json!({"maf:kr": {"zz": 1}})))
                .unwrap_err(),
            "maf:kr: unknown field `zz`, expected one of `rkid`, `et`, `lbl`, `adfq`, `suid`, `tids`, `kyv`, `smci`, `smck`"
        );
        assert_eq!(
            unwrap::<KeyRegMsg>("maf:kr", Some(&serde_json::json!({"maf:mcr": {}}))).unwrap_err(),
            "the content must be one maf:kr object"
        );
    }

    #[test]
    fn kinds_round_trip() {
        for b in [
            Binding::Ae("Cdevice".into()),
            Binding::Cse("/id-in".into()),
            Binding::CredentialId("11-km@maf.example".into()),
        ] {
            assert_eq!(binding_of(kind_of(&b), b.originator()), Some(b.clone()));
        }
        assert_eq!(binding_of("cse", "not a cse"), None);
        assert_eq!(binding_of("other", "/id-in"), None);
    }
}
