//! `<request>` (TS-0001 9.6.12): created only by the CSE for a non-blocking request
//! (`nonblocking.rs`); no parent accepts one from a client.

use super::ResourceKind;

pub(super) struct Request;

impl ResourceKind for Request {}
