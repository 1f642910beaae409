//! The policy files the DAS tests run `bastion das` with: the `[das]` and `[signing]`
//! sections they all share, the rules several of them grant by, and the writing of the
//! policy beside its owner-only signing secret (docs/das.md, "Policy file").

use super::{write_key_file, CSE_NAME};
use std::path::{Path, PathBuf};

/// The DAS's own part of every test policy: the DAS Server AE `//bastion.example/id-das/Cdas`
/// in the SP of this suite's CSE, trusting that CSE, signing HS256 with `das.secret` beside
/// the policy.
const HEAD: &str = r#"
[das]
issuer = "//bastion.example/id-das/Cdas"
token_domain = "das.example"
sp_id = "//bastion.example"
cse_id = "/id-in"
trusted_cses = ["/id-in"]

[signing]
algorithm = "HS256"
secret_file = "das.secret"
"#;

/// Grants Cm1 RETRIEVE by dynamic ACP information.
pub const CM1_ACP_RULE: &str = r#"
[[rule]]
name = "cm1-acp"
originators = ["Cm1"]
operations = ["retrieve"]
[rule.acp]
lifetime = 600
privileges = { acr = [{ acor = ["Cm1"], acop = 2 }] }
"#;

/// Grants Cm2 RETRIEVE of `CSE_NAME/resource` by a token for this suite's CSE.
pub fn cm2_token_rule(resource: &str) -> String {
    format!(
        r#"
[[rule]]
name = "cm2-token"
originators = ["Cm2"]
operations = ["retrieve"]
[rule.token]
audience = ["//bastion.example/id-in"]
lifetime = 300
[[rule.token.permissions]]
ris = ["{CSE_NAME}/{resource}"]
pv = {{ acr = [{{ acor = ["all"], acop = 2 }}] }}
"#
    )
}

/// A whole policy: the shared `[das]` and `[signing]` sections, then `rules`.
pub fn das_policy(rules: &str) -> String {
    format!("{HEAD}{rules}")
}

/// Writes `secret` as `das.secret` (owner-only, as bastion_tls::secret requires) and
/// `policy` as `das.toml` into `dir`; returns the policy's path.
pub fn write_das_files(dir: &Path, secret: &str, policy: &str) -> PathBuf {
    write_key_file(&dir.join("das.secret"), secret);
    let file = dir.join("das.toml");
    std::fs::write(&file, policy).expect("policy");
    file
}
