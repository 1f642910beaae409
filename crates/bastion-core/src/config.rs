//! The CSE's identity and behaviour settings, as resolved from the configuration file and
//! command line by the binary.

use bastion_proto::attrs::release::Release;

/// The release every notification this CSE sends speaks: its `rvi`, and the attributes
/// the representations in it show (TS-0001 8.1.2). Release 3, which every peer accepts.
pub const NOTIFICATION_RELEASE: Release = Release::R3;

/// The role of this CSE in a deployment (TS-0001 §6.2; `cst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CseType {
    In,
    Mn,
    Asn,
}

impl CseType {
    pub fn number(self) -> u64 {
        match self {
            CseType::In => 1,
            CseType::Mn => 2,
            CseType::Asn => 3,
        }
    }
}

/// Everything the pipeline needs to know about the CSE it is.
#[derive(Clone, Debug)]
pub struct CseConfig {
    /// SP-relative CSE-ID, e.g. `/id-in`.
    pub cse_id: String,
    /// CSEBase resource name, e.g. `cse-in`.
    pub cse_name: String,
    /// M2M-SP-ID, e.g. `//bastion.example`.
    pub sp_id: String,
    pub cse_type: CseType,
    /// The admin originator, granted everything.
    pub admin: String,
    /// pointOfAccess advertised in the CSEBase.
    pub poa: Vec<String>,
    /// Release versions accepted in `rvi` and listed in `srv`; each must be one
    /// `bastion_proto::attrs::release::Release` names (a value it does not name is never
    /// accepted). Default: 2a, 3, 4 and 5.
    pub releases: Vec<String>,
    /// Lifetime given to resources created without `et`, in seconds.
    pub default_lifetime_secs: i64,
    /// How often the expiry sweep runs, in milliseconds.
    pub expiry_interval_ms: u64,
    /// Upper bound on results of one discovery when the request gives no `lim`.
    pub discovery_limit: usize,
    /// Most child resources (representations or references) one result holds beside
    /// the addressed resource (`rcn` 4, 5, 6, 8); beyond it the result is partial.
    pub result_limit: usize,
    /// Most bytes (estimated, serialized) of child resources in one result, and of the
    /// members' answers aggregated by one group fan-out; beyond it the result is partial.
    pub result_max_bytes: usize,
    /// Most member requests one original request may cause through group fan-out,
    /// counted across nested groups; members beyond it are not asked (partial result).
    pub fanout_limit: usize,
    /// Put the one-line explanation of a denial into the `m2m:dbg` of the 4103 instead of
    /// "originator has no privilege". Off by default: it reveals policy to the requester.
    pub explain_denials_to_client: bool,
    /// Under the default policy of the `<CSEBase>` (no `acpi`), registered AEs and
    /// registered remote CSEs may RETRIEVE it: the registration flow reads it (TS-0004
    /// 7.4.4, 7.4.7) and a registrar or registree checks liveness with it. Off: only the
    /// administrator may.
    pub registered_retrieve_cse_base: bool,
    /// Roles, tokens and dynamic authorization (TS-0003 7.3, 7.4).
    pub authorization: AuthorizationConfig,
    /// SP-relative CSE-ID of the registrar CSE, when this CSE registers with one: the
    /// default next hop of forwarding (TS-0001 7.3.2.6; `forward.rs`).
    pub registrar: Option<String>,
    /// Development only: outside any security association, accept from a loopback peer
    /// the originators of other CSEs (CSE-IDs and their AE-IDs) that no association
    /// binds, as long as they belong to a CSE this CSE knows. Off: such a CSE-ID is 4107
    /// and such an AE-ID 4106 (TS-0003 7.2.1).
    pub trust_loopback_cses: bool,
    /// Most `<subscription>` resources one originator (normalized) may hold here; one
    /// more is 5207 (docs/decisions.md).
    pub max_subscriptions_per_originator: usize,
    /// Most requests held at once until their Operation Execution Time (`oet`); one more
    /// is 5207, so delayed requests cannot pile up (docs/decisions.md).
    pub max_delayed_requests: usize,
    /// The specializations of `<flexContainer>` this CSE knows (TS-0001 9.6.35): the
    /// shipped ones and those of the files `[flex] definitions` names.
    pub flex: std::sync::Arc<bastion_proto::flex::Specializations>,
}

/// Built-in default of [`CseConfig::max_delayed_requests`].
pub const DEFAULT_MAX_DELAYED_REQUESTS: usize = 256;

/// Built-in default of [`CseConfig::max_subscriptions_per_originator`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_ORIGINATOR: usize = 1000;

/// Who is trusted to vouch for originators beyond the ACPs.
#[derive(Clone, Debug, Default)]
pub struct AuthorizationConfig {
    /// Token issuers (`iss`, any ID form) with the key that fixes their one accepted
    /// algorithm (TS-0003 7.3.2.4). A token from anyone else is refused.
    pub token_issuers: Vec<(String, bastion_policy::IssuerKey)>,
    /// Clock leeway for token `nbf`/`exp`, seconds.
    pub token_leeway_secs: u32,
    /// Authorities (`tkis` of a `<role>`, any ID form) whose roles count (TS-0003 7.4.3:
    /// only roles from a valid authority). Empty: no `<role>` resource grants anything.
    pub role_authorities: Vec<String>,
    /// How long a consultation of a Dynamic Authorization Server may take, milliseconds.
    pub das_timeout_ms: u64,
    /// Longest time dynamic ACP information granted by a DAS is kept, seconds (the DAS's
    /// own `pl` may shorten it).
    pub das_max_lifetime_secs: i64,
}

impl CseConfig {
    /// The release an `rvi` names when this CSE accepts it (listed in `releases`).
    pub fn release(&self, rvi: &str) -> Option<Release> {
        Release::from_rvi(rvi).filter(|_| self.releases.iter().any(|r| r == rvi))
    }
}

impl Default for CseConfig {
    fn default() -> Self {
        CseConfig {
            cse_id: "/id-in".into(),
            cse_name: "cse-in".into(),
            sp_id: "//bastion.example".into(),
            cse_type: CseType::In,
            admin: "CAdmin".into(),
            poa: vec!["http://127.0.0.1:8080".into()],
            releases: vec!["2a".into(), "3".into(), "4".into(), "5".into()],
            default_lifetime_secs: 10 * 365 * 24 * 3600,
            expiry_interval_ms: 1000,
            discovery_limit: 10_000,
            result_limit: 100_000,
            result_max_bytes: 16 * 1024 * 1024,
            fanout_limit: 1_000,
            explain_denials_to_client: false,
            registered_retrieve_cse_base: true,
            authorization: AuthorizationConfig {
                das_timeout_ms: 2000,
                das_max_lifetime_secs: 3600,
                ..AuthorizationConfig::default()
            },
            registrar: None,
            trust_loopback_cses: false,
            max_subscriptions_per_originator: DEFAULT_MAX_SUBSCRIPTIONS_PER_ORIGINATOR,
            max_delayed_requests: DEFAULT_MAX_DELAYED_REQUESTS,
            flex: std::sync::Arc::new(bastion_proto::flex::Specializations::shipped()),
        }
    }
}

impl CseConfig {
    /// The CSEBase resource ID: the CSE-ID without its leading slash (e.g. `id-in`).
    pub fn cse_ri(&self) -> &str {
        self.cse_id.trim_start_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0004_7_3_2_1_a_release_is_accepted_only_when_listed_and_known() {
        let default = CseConfig::default();
        for r in Release::ALL {
            assert_eq!(default.release(r.rvi()), Some(r));
        }
        for refused in ["", "1", "2", "6", "5x"] {
            assert_eq!(default.release(refused), None, "{refused:?}");
        }
        let only_three = CseConfig {
            releases: vec!["3".into(), "7".into()],
            ..CseConfig::default()
        };
        assert_eq!(only_three.release("3"), Some(Release::R3));
        assert_eq!(only_three.release("5"), None);
        // Listed but not a release Bastion can speak: still refused.
        assert_eq!(only_three.release("7"), None);
    }
}
