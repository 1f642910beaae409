//! `<CSEBase>` (TS-0001 9.6.3): the root, made from configuration at start-up
//! (`load.rs`); no request creates or updates it.

use super::ResourceKind;
use bastion_proto::RequestError;

pub(super) struct CseBase;

impl ResourceKind for CseBase {
    fn check_creatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed("a CSEBase cannot be created"))
    }

    fn check_updatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed("the CSEBase cannot be updated"))
    }
}
