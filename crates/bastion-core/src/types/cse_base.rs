//! `<CSEBase>` (TS-0001 9.6.3): the root, made from configuration at start-up
//! (`load.rs`); no request creates or updates it.

use super::ResourceKind;
use bastion_proto::time::Timestamp;
use bastion_proto::RequestError;
use serde_json::{Map, Value};

/// Releases whose representation of the CSEBase has no `currentTime` (it came with
/// Release 4).
const BEFORE_CURRENT_TIME: [&str; 2] = ["2a", "3"];

pub(super) struct CseBase;

impl ResourceKind for CseBase {
    fn check_creatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed("a CSEBase cannot be created"))
    }

    fn check_updatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed("the CSEBase cannot be updated"))
    }

    /// `ctm` (currentTime): the CSE's clock when the CSEBase is retrieved, so that an
    /// originator can compare its own clock (for `et`, `oet`, `actw`) with the CSE's.
    fn add_sampled(&self, attrs: &mut Map<String, Value>, now: Timestamp, rvi: &str) {
        if !BEFORE_CURRENT_TIME.contains(&rvi) {
            attrs.insert("ctm".into(), Value::String(now.format()));
        }
    }
}
