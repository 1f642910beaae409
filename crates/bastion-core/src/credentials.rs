//! The credentials a request brings besides its security association (TS-0003 7.3.2.3,
//! 7.4.3; digest §8, §10.3, §11): tokens (`tkns`), Token-IDs (`tids`), Local-Token-IDs
//! (`ltids`) and Role-IDs (`rids`). They are checked once per request, before target
//! resolution, and the result is kept in the [`RequestContext`]: the roles the PIP answers
//! with, and the verified tokens whose permissions the PEP adds as applicable rules.
//!
//! Rules (fail closed):
//! * a token must verify (signature by a configured issuer with its pinned algorithm,
//!   audience, holder = originator, window); one bad token fails the request with 4103;
//! * a Token-ID must name a `<token>` of this CSE's Token Repository held by the
//!   originator and inside its window, otherwise 4103;
//! * this CSE assigns no Local-Token-IDs, so any `ltids` is unknown: 4103;
//! * a Role-ID counts only when a `<role>` of this CSE names it, is held by the
//!   originator, lies inside its window and comes from a configured role authority;
//!   Role-IDs that do not are dropped (the request goes on without them).

use crate::checks::Envelope;
use crate::{Cse, RequestContext};
use bastion_policy::{
    normalize_originator, TokenContext, TokenError, TokenVerifier, ValidatedToken,
};
use bastion_proto::time::Timestamp;
use bastion_proto::RequestError;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Most tokens the verification cache holds before it starts over.
const TOKEN_CACHE_CAPACITY: usize = 4096;

/// A verified token with the exact text it was verified from (hash collisions must not
/// hand out another token's claims).
type CachedToken = (Box<str>, Arc<ValidatedToken>);

/// Verified tokens by their compact serialisation, so that a client repeating a token
/// does not pay for an ES256 verification on every request. A hit is re-checked against
/// the request's originator and clock.
pub(crate) struct TokenCache {
    verifier: TokenVerifier,
    leeway: i64,
    hasher: RandomState,
    entries: Mutex<HashMap<u64, CachedToken>>,
}

impl TokenCache {
    pub(crate) fn new(verifier: TokenVerifier, leeway: u32) -> Self {
        TokenCache {
            verifier,
            leeway: i64::from(leeway),
            hasher: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verifies `jwt` for `originator` (absolute form) at `now`.
    pub(crate) fn verify(
        &self,
        jwt: &str,
        originator: &str,
        now: i64,
    ) -> Result<Arc<ValidatedToken>, RequestError> {
        let key = self.hasher.hash_one(jwt);
        if let Some((raw, token)) = self.entries.lock().get(&key) {
            if &**raw == jwt {
                // The same checks, with the same reasons, as a fresh verification.
                return if token.holder != originator {
                    Err(rejected(TokenError::HolderMismatch.reason()))
                } else if !in_window(token, originator, now, self.leeway) {
                    Err(rejected("token not valid now"))
                } else {
                    Ok(token.clone())
                };
            }
        }
        let token = self
            .verifier
            .verify(jwt, &TokenContext { now, originator })
            .map_err(|e| rejected(e.reason()))?;
        let token = Arc::new(token);
        let mut entries = self.entries.lock();
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, (jwt.into(), token.clone()));
        Ok(token)
    }
}

fn rejected(reason: &str) -> RequestError {
    RequestError::NoPrivilege(format!("token rejected: {reason}").into())
}

/// A verified token still counts for `originator` (absolute form) at `now`.
fn in_window(token: &ValidatedToken, originator: &str, now: i64, leeway: i64) -> bool {
    token.holder == originator
        && token.not_before <= now.saturating_add(leeway)
        && now.saturating_sub(leeway) < token.not_after
}

impl Cse {
    /// Checks the request's tokens, Token-IDs and Role-IDs and records what holds in
    /// `ctx` (module docs).
    pub(crate) fn gather_credentials(
        &self,
        req: &Envelope,
        ctx: &mut RequestContext,
        now: Timestamp,
    ) -> Result<(), RequestError> {
        if req.tkns.is_empty() && req.tids.is_empty() && req.ltids.is_empty() && req.rids.is_empty()
        {
            return Ok(());
        }
        if !req.ltids.is_empty() {
            return Err(RequestError::NoPrivilege(
                "unknown local token ID: this CSE assigns none".into(),
            ));
        }
        let originator = normalize_originator(&self.local, &req.fr);
        let mut tokens = Vec::with_capacity(req.tkns.len() + req.tids.len());
        for jwt in &req.tkns {
            tokens.push(self.tokens.verify(jwt, &originator, now.0)?);
        }
        let leeway = i64::from(self.config.authorization.token_leeway_secs);
        let tree = self.tree.read();
        for tid in &req.tids {
            let token = match tree.token_named(tid).and_then(|n| n.token()) {
                Some(state) if in_window(&state.token, &originator, now.0, leeway) => {
                    state.token.clone()
                }
                _ => {
                    return Err(RequestError::NoPrivilege(
                        "token ID unknown here or not valid for this originator".into(),
                    ))
                }
            };
            tokens.push(token);
        }
        let mut roles: Vec<Box<str>> = tokens
            .iter()
            .flat_map(|t| t.role_ids())
            .map(Box::from)
            .collect();
        for rid in &req.rids {
            let Some((relative, fqdn)) = rid.split_once('@') else {
                continue;
            };
            let rid = format!("{relative}@{}", fqdn.to_ascii_lowercase());
            let backed = tree.roles_named(&rid).any(|n| match n.role() {
                Some(role) => role.valid_for(&originator, now.0, &self.role_authorities),
                _ => false,
            });
            if backed {
                roles.push(rid.into());
            } else {
                tracing::debug!(role = %rid, "role ID not backed by a valid <role>: ignored");
            }
        }
        roles.sort_unstable();
        roles.dedup();
        ctx.roles = roles;
        ctx.tokens = tokens;
        Ok(())
    }
}
