//! The DAS policy file (TOML) and the rule matcher (TS-0003 7.3.1: how a DAS Server
//! decides is out of scope of the specification; this is Bastion's choice, docs/das.md).
//!
//! A request matches a rule when all of its conditions hold:
//!
//! * originator: the normalised `or` equals one of `originators` or starts with one of
//!   `originator_prefixes` (both normalised with the home identity `sp_id` + `cse_id`).
//!   The originator is data: no character in it has a meaning, and prefixes may not
//!   contain `*`;
//! * target: `targets` empty, or `trid` equals an entry or continues it after a `/`
//!   (whole segments: `/id-in/a` covers `/id-in/a/b`, not `/id-in/ab`);
//! * operation: `op` is one of `operations`;
//! * time: the DAS clock is inside `[valid_from, valid_until)` where given.
//!
//! The first matching rule in file order decides; no match is a denial.

use crate::DasError;
use bastion_policy::token::is_role_id;
use bastion_policy::{normalize_originator, LocalIdentity, RuleSet};
use bastion_proto::security_info::DynAuthDasRequest;
use bastion_proto::time::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Longest lifetime a rule may grant (one year).
pub const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    das: DasSection,
    signing: Option<SigningSection>,
    #[serde(default)]
    rule: Vec<RuleSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DasSection {
    issuer: String,
    token_domain: String,
    sp_id: String,
    cse_id: String,
    #[serde(default)]
    trusted_cses: Vec<String>,
    max_tokens: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningSection {
    algorithm: String,
    secret_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSection {
    name: String,
    #[serde(default)]
    originators: Vec<String>,
    #[serde(default)]
    originator_prefixes: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    operations: Vec<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    acp: Option<AcpSection>,
    token: Option<TokenSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcpSection {
    privileges: Value,
    lifetime: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSection {
    audience: Vec<String>,
    lifetime: u64,
    name: Option<String>,
    #[serde(default)]
    permissions: Vec<PermissionSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionSection {
    #[serde(default)]
    ris: Vec<String>,
    pv: Option<Value>,
    #[serde(default)]
    rids: Vec<String>,
}

/// The JWS algorithm and where its key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningConfig {
    /// HS256; the file holds the shared secret (a trailing newline is dropped).
    Hs256 { secret_file: PathBuf },
    /// ES256; the file holds a P-256 private key in PEM (PKCS#8 or SEC1).
    Es256 { private_key_file: PathBuf },
}

/// What a matching rule grants.
#[derive(Clone, Debug, PartialEq)]
pub enum Grant {
    /// Dynamic ACP information: `gp` (an `m2m:setOfAcrs`) valid for `lifetime` seconds.
    Acp { privileges: Value, lifetime: u64 },
    /// A token issued by this DAS.
    Token(TokenGrant),
}

/// The token a rule issues.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenGrant {
    /// `aud`: CSE-IDs the token is meant for.
    pub audience: Vec<String>,
    /// Seconds from issuance to `exp`.
    pub lifetime: u64,
    /// `tknm`.
    pub name: Option<String>,
    /// `tkps.pm` entries, each `{ris, pv, rids}` as JSON.
    pub permissions: Vec<Value>,
}

/// One compiled rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Normalised exact originators.
    pub originators: Vec<String>,
    /// Normalised originator prefixes.
    pub originator_prefixes: Vec<String>,
    pub targets: Vec<String>,
    /// Operation numbers (1 CREATE .. 5 NOTIFY).
    pub operations: Vec<u64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub grant: Grant,
}

/// The whole compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `iss` of issued tokens, absolute form.
    pub issuer: String,
    /// FQDN in token IDs `name@fqdn`.
    pub token_domain: String,
    /// The home identity relative originators are resolved against.
    pub home: LocalIdentity,
    /// Normalised CSE-IDs that may ask on behalf of any originator (direct flow).
    pub trusted_cses: Vec<String>,
    /// Most issued tokens kept for Token-ID requests.
    pub max_tokens: usize,
    pub signing: Option<SigningConfig>,
    pub rules: Vec<Rule>,
}

fn invalid(what: impl Into<String>) -> DasError {
    DasError::Policy(what.into())
}

fn operation_number(name: &str) -> Option<u64> {
    Some(match name.to_ascii_lowercase().as_str() {
        "create" => 1,
        "retrieve" => 2,
        "update" => 3,
        "delete" => 4,
        "notify" => 5,
        _ => return None,
    })
}

fn timestamp(rule: &str, key: &str, value: Option<&str>) -> Result<Option<Timestamp>, DasError> {
    value
        .map(|v| {
            Timestamp::parse(v)
                .ok_or_else(|| invalid(format!("rule {rule}: {key} is not a oneM2M timestamp")))
        })
        .transpose()
}

fn lifetime(rule: &str, value: u64) -> Result<u64, DasError> {
    if value == 0 || value > MAX_LIFETIME_SECS {
        return Err(invalid(format!(
            "rule {rule}: lifetime must be 1..={MAX_LIFETIME_SECS} seconds"
        )));
    }
    Ok(value)
}

impl Policy {
    /// Reads and compiles a policy file; relative key paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Policy, DasError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Policy::parse(&text, base)
    }

    /// Compiles the TOML text of a policy file.
    pub fn parse(text: &str, base: &Path) -> Result<Policy, DasError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        let home = LocalIdentity {
            sp_id: file.das.sp_id,
            cse_id: file.das.cse_id,
            admin: "CAdmin".into(),
        };
        home.validate()
            .map_err(|e| invalid(format!("das.sp_id/cse_id: {}", e.reason())))?;
        if !file.das.issuer.starts_with("//") || file.das.issuer.len() < 4 {
            return Err(invalid("das.issuer must be an absolute ID (//fqdn/...)"));
        }
        if !is_role_id(&format!("x@{}", file.das.token_domain)) {
            return Err(invalid("das.token_domain must be a lower-case FQDN"));
        }
        let signing = file
            .signing
            .map(|s| -> Result<SigningConfig, DasError> {
                match (s.algorithm.as_str(), s.secret_file, s.private_key_file) {
                    ("HS256", Some(f), None) => Ok(SigningConfig::Hs256 {
                        secret_file: base.join(f),
                    }),
                    ("ES256", None, Some(f)) => Ok(SigningConfig::Es256 {
                        private_key_file: base.join(f),
                    }),
                    _ => Err(invalid(
                        "signing: algorithm HS256 with secret_file, or ES256 with private_key_file",
                    )),
                }
            })
            .transpose()?;
        let trusted_cses = file
            .das
            .trusted_cses
            .iter()
            .map(|c| normalize_originator(&home, c))
            .collect();
        let mut rules = Vec::with_capacity(file.rule.len());
        for r in file.rule {
            rules.push(compile_rule(r, &home, signing.is_some())?);
        }
        Ok(Policy {
            issuer: file.das.issuer,
            token_domain: file.das.token_domain,
            home,
            trusted_cses,
            max_tokens: file.das.max_tokens.unwrap_or(10_000),
            signing,
            rules,
        })
    }

    /// The normalised form of an originator.
    pub fn normalize(&self, id: &str) -> String {
        normalize_originator(&self.home, id)
    }

    /// The first rule matching `req` at `now` (`or` already normalised in `originator`).
    pub fn find(&self, originator: &str, req: &DynAuthDasRequest, now: Timestamp) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(originator, req, now))
    }
}

fn compile_rule(r: RuleSection, home: &LocalIdentity, can_sign: bool) -> Result<Rule, DasError> {
    let name = r.name;
    if r.originators.is_empty() && r.originator_prefixes.is_empty() {
        return Err(invalid(format!(
            "rule {name}: originators or originator_prefixes is required"
        )));
    }
    for o in r.originators.iter().chain(&r.originator_prefixes) {
        if o.is_empty() || o.contains('*') || !o.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "rule {name}: originator entries are non-empty, visible ASCII, without '*'"
            )));
        }
    }
    if r.targets.iter().any(|t| t.is_empty() || t.ends_with('/')) {
        return Err(invalid(format!(
            "rule {name}: targets are non-empty and do not end with '/'"
        )));
    }
    if r.operations.is_empty() {
        return Err(invalid(format!("rule {name}: operations is empty")));
    }
    let operations = r
        .operations
        .iter()
        .map(|o| {
            operation_number(o)
                .ok_or_else(|| invalid(format!("rule {name}: unknown operation {o:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let valid_from = timestamp(&name, "valid_from", r.valid_from.as_deref())?;
    let valid_until = timestamp(&name, "valid_until", r.valid_until.as_deref())?;
    let grant = match (r.acp, r.token) {
        (Some(acp), None) => {
            RuleSet::parse(&acp.privileges, home).map_err(|e| {
                invalid(format!(
                    "rule {name}: acp.privileges.{}: {}",
                    e.path(),
                    e.reason()
                ))
            })?;
            Grant::Acp {
                privileges: acp.privileges,
                lifetime: lifetime(&name, acp.lifetime)?,
            }
        }
        (None, Some(token)) => {
            if !can_sign {
                return Err(invalid(format!(
                    "rule {name}: a token grant needs a [signing] section"
                )));
            }
            if token.audience.is_empty() || token.audience.iter().any(|a| a.is_empty()) {
                return Err(invalid(format!("rule {name}: token.audience is empty")));
            }
            let mut permissions = Vec::new();
            for p in token.permissions {
                permissions.push(compile_permission(&name, p, home)?);
            }
            Grant::Token(TokenGrant {
                audience: token.audience,
                lifetime: lifetime(&name, token.lifetime)?,
                name: token.name,
                permissions,
            })
        }
        _ => {
            return Err(invalid(format!(
                "rule {name}: exactly one of [rule.acp] or [rule.token]"
            )))
        }
    };
    Ok(Rule {
        originators: r
            .originators
            .iter()
            .map(|o| normalize_originator(home, o))
            .collect(),
        originator_prefixes: r
            .originator_prefixes
            .iter()
            .map(|o| normalize_originator(home, o))
            .collect(),
        targets: r.targets,
        operations,
        valid_from,
        valid_until,
        grant,
        name,
    })
}

fn compile_permission(
    rule: &str,
    p: PermissionSection,
    home: &LocalIdentity,
) -> Result<Value, DasError> {
    let mut entry = serde_json::Map::new();
    if let Some(pv) = &p.pv {
        if p.ris.is_empty() {
            return Err(invalid(format!(
                "rule {rule}: a permission with pv needs ris (TS-0003 7.3.2.4)"
            )));
        }
        RuleSet::parse(pv, home).map_err(|e| {
            invalid(format!(
                "rule {rule}: permissions.pv.{}: {}",
                e.path(),
                e.reason()
            ))
        })?;
    }
    if !p.rids.iter().all(|r| is_role_id(r)) {
        return Err(invalid(format!(
            "rule {rule}: permissions.rids are Role-IDs name@lower-case-fqdn"
        )));
    }
    if p.ris.iter().any(|r| r.is_empty()) {
        return Err(invalid(format!(
            "rule {rule}: empty entry in permissions.ris"
        )));
    }
    if !p.ris.is_empty() {
        entry.insert("ris".into(), Value::from(p.ris));
    }
    if let Some(pv) = p.pv {
        entry.insert("pv".into(), pv);
    }
    if !p.rids.is_empty() {
        entry.insert("rids".into(), Value::from(p.rids));
    }
    if entry.is_empty() {
        return Err(invalid(format!("rule {rule}: empty permission")));
    }
    Ok(Value::Object(entry))
}

impl Rule {
    /// Whether the rule applies (module docs).
    pub fn matches(&self, originator: &str, req: &DynAuthDasRequest, now: Timestamp) -> bool {
        let who = self.originators.iter().any(|o| o == originator)
            || self
                .originator_prefixes
                .iter()
                .any(|p| originator.starts_with(p.as_str()));
        let target = self.targets.is_empty()
            || req.trid.as_deref().is_some_and(|trid| {
                self.targets.iter().any(|t| {
                    trid == t
                        || trid
                            .strip_prefix(t.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                })
            });
        let op = self.operations.contains(&req.op);
        let time = self.valid_from.is_none_or(|from| now >= from)
            && self.valid_until.is_none_or(|until| now < until);
        who && target && op && time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[das]
issuer = "//bastion.example/id-das/Cdas"
token_domain = "das.example"
sp_id = "//bastion.example"
cse_id = "/id-in"
trusted_cses = ["/id-in"]
"#;

    fn policy(rules: &str) -> Result<Policy, DasError> {
        Policy::parse(&format!("{BASE}{rules}"), Path::new("/etc/das"))
    }

    fn req(or: &str, op: u64, trid: Option<&str>) -> DynAuthDasRequest {
        DynAuthDasRequest {
            or: or.into(),
            op,
            trid: trid.map(str::to_owned),
            ..DynAuthDasRequest::default()
        }
    }

    const ACP_RULE: &str = r#"
[[rule]]
name = "fleet"
originators = ["Csensor1"]
originator_prefixes = ["//bastion.example/id-in/Cfleet-"]
targets = ["/id-in/farm"]
operations = ["retrieve", "UPDATE"]
valid_from = "20250101T000000"
valid_until = "20260101T000000"
[rule.acp]
lifetime = 600
privileges = { acr = [{ acor = ["Csensor1"], acop = 2 }] }
"#;

    #[test]
    fn rules_match_segment_wise_and_by_exact_or_prefix_originator() {
        let p = policy(ACP_RULE).expect("valid policy");
        assert_eq!(p.trusted_cses, vec!["//bastion.example/id-in"]);
        let now = Timestamp::parse("20250601T000000").unwrap();
        let o = p.normalize("Csensor1");
        assert_eq!(o, "//bastion.example/id-in/Csensor1");
        assert!(p
            .find(&o, &req("Csensor1", 2, Some("/id-in/farm")), now)
            .is_some());
        assert!(p
            .find(&o, &req("Csensor1", 3, Some("/id-in/farm/c1")), now)
            .is_some());
        assert!(p
            .find(&o, &req("Csensor1", 2, Some("/id-in/farmhouse")), now)
            .is_none());
        assert!(p.find(&o, &req("Csensor1", 2, None), now).is_none());
        assert!(p
            .find(&o, &req("Csensor1", 4, Some("/id-in/farm")), now)
            .is_none());
        let fleet = p.normalize("Cfleet-7");
        assert!(p
            .find(&fleet, &req("Cfleet-7", 2, Some("/id-in/farm")), now)
            .is_some());
        let other = p.normalize("Csensor10");
        assert!(p
            .find(&other, &req("Csensor10", 2, Some("/id-in/farm")), now)
            .is_none());
        let star = p.normalize("C*");
        assert!(p
            .find(&star, &req("C*", 2, Some("/id-in/farm")), now)
            .is_none());
        let late = Timestamp::parse("20260101T000000").unwrap();
        assert!(p
            .find(&o, &req("Csensor1", 2, Some("/id-in/farm")), late)
            .is_none());
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let cases = [
            (ACP_RULE.replace("Cfleet-", "Cfleet-*"), "without '*'"),
            (
                ACP_RULE.replace("\"retrieve\", ", "\"read\", "),
                "unknown operation",
            ),
            (ACP_RULE.replace("acop = 2", "acop = 999"), "acp.privileges"),
            (
                ACP_RULE.replace("lifetime = 600", "lifetime = 0"),
                "lifetime",
            ),
            (
                "[[rule]]\nname = \"t\"\noriginators = [\"Cae\"]\noperations = [\"create\"]\n\
                 [rule.token]\naudience = [\"/id-in\"]\nlifetime = 60\n"
                    .to_owned(),
                "needs a [signing]",
            ),
            (
                ACP_RULE.replace(
                    "[rule.acp]",
                    "[rule.token]\naudience=[\"/id-in\"]\nlifetime=60\n[rule.acp]",
                ),
                "exactly one of",
            ),
            (
                ACP_RULE.replace("valid_from = \"20250101T000000\"", "valid_from = \"x\""),
                "valid_from",
            ),
            (format!("{ACP_RULE}\nextra = 1"), "unknown field"),
        ];
        for (text, expected) in cases {
            match policy(&text) {
                Err(DasError::Policy(why)) => assert!(why.contains(expected), "{why}"),
                other => panic!("expected a policy error with {expected:?}, got {other:?}"),
            }
        }
        let bad_domain = BASE.replace("das.example", "DAS.example");
        assert!(Policy::parse(&bad_domain, Path::new(".")).is_err());
    }

    #[test]
    fn token_rules_compile_permissions() {
        let text = r#"
[signing]
algorithm = "HS256"
secret_file = "secret"
[[rule]]
name = "tok"
originators = ["Cae1"]
operations = ["create"]
[rule.token]
audience = ["//bastion.example/id-in"]
lifetime = 60
[[rule.token.permissions]]
ris = ["/id-in/cnt1"]
pv = { acr = [{ acor = ["all"], acop = 1 }] }
rids = ["r1@roles.example"]
"#;
        let p = policy(text).expect("valid");
        assert_eq!(
            p.signing,
            Some(SigningConfig::Hs256 {
                secret_file: PathBuf::from("/etc/das/secret")
            })
        );
        let Grant::Token(t) = &p.rules[0].grant else {
            panic!("token grant expected");
        };
        assert_eq!(
            t.permissions,
            vec![serde_json::json!({"ris": ["/id-in/cnt1"],
                "pv": {"acr": [{"acor": ["all"], "acop": 1}]}, "rids": ["r1@roles.example"]})]
        );
        let no_ris = text.replace("ris = [\"/id-in/cnt1\"]\n", "");
        assert!(matches!(policy(&no_ris), Err(DasError::Policy(w)) if w.contains("needs ris")));
    }

    #[test]
    fn the_documented_example_policy_is_valid() {
        let doc = include_str!("../../../docs/das.md");
        let start = doc.find("```toml\n").map(|i| i + 8).unwrap_or(0);
        let len = doc[start..].find("```").unwrap_or(0);
        let p = Policy::parse(&doc[start..start + len], Path::new(".")).expect("valid example");
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[1].operations, vec![1, 2]);
    }
}
