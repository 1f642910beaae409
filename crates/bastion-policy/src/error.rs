//! The one error type of the crate: why an `m2m:setOfAcrs` (or a local identity) was
//! rejected, as a JSON-ish path plus a short human reason suitable for an `m2m:dbg`.

/// A rule set (or identity) that cannot be accepted. `path` names the offending member,
/// e.g. `acr[2].acop` (`setOfAcrs` for the top level); `reason` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PolicyError {
    path: String,
    reason: String,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        PolicyError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Where the problem is, e.g. `acr[0].acod[1].chty`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, e.g. `must be an integer in 1..=63`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
