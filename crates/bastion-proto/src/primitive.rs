//! Request and response primitives (TS-0004 §7.2.1), binding-independent.

use crate::filter::FilterCriteria;
use crate::rsc::Rsc;
use serde_json::Value;

/// The `op` parameter (m2m:operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Retrieve,
    Update,
    Delete,
    Notify,
}

impl Operation {
    pub fn from_number(n: u64) -> Option<Operation> {
        Some(match n {
            1 => Operation::Create,
            2 => Operation::Retrieve,
            3 => Operation::Update,
            4 => Operation::Delete,
            5 => Operation::Notify,
            _ => return None,
        })
    }

    /// The number [`Operation::from_number`] reads (m2m:operation).
    pub fn number(self) -> u64 {
        match self {
            Operation::Create => 1,
            Operation::Retrieve => 2,
            Operation::Update => 3,
            Operation::Delete => 4,
            Operation::Notify => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Retrieve => "RETRIEVE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Notify => "NOTIFY",
        }
    }
}

/// The `rcn` parameter (m2m:resultContent, TS-0004 §6.3.4.2.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultContent {
    Nothing,
    Attributes,
    HierarchicalAddress,
    HierarchicalAddressAndAttributes,
    AttributesAndChildResources,
    AttributesAndChildReferences,
    ChildReferences,
    OriginalResource,
    ChildResources,
    ModifiedAttributes,
    SemanticContent,
    DiscoveryResultReferences,
    Permissions,
}

impl ResultContent {
    pub fn from_number(n: u64) -> Option<ResultContent> {
        use ResultContent::*;
        Some(match n {
            0 => Nothing,
            1 => Attributes,
            2 => HierarchicalAddress,
            3 => HierarchicalAddressAndAttributes,
            4 => AttributesAndChildResources,
            5 => AttributesAndChildReferences,
            6 => ChildReferences,
            7 => OriginalResource,
            8 => ChildResources,
            9 => ModifiedAttributes,
            10 => SemanticContent,
            11 => DiscoveryResultReferences,
            12 => Permissions,
            _ => return None,
        })
    }

    /// Whether this value may accompany `op` (core-primitives.md §4.3). Discovery is
    /// checked separately by the pipeline.
    pub fn valid_for(self, op: Operation) -> bool {
        use ResultContent::*;
        match op {
            Operation::Create => matches!(
                self,
                Nothing
                    | Attributes
                    | HierarchicalAddress
                    | HierarchicalAddressAndAttributes
                    | ModifiedAttributes
            ),
            Operation::Retrieve => matches!(
                self,
                Attributes
                    | AttributesAndChildResources
                    | AttributesAndChildReferences
                    | ChildReferences
                    | OriginalResource
                    | ChildResources
                    | SemanticContent
                    | DiscoveryResultReferences
                    | Permissions
            ),
            Operation::Update => matches!(self, Nothing | Attributes | ModifiedAttributes),
            Operation::Delete => matches!(
                self,
                Nothing
                    | Attributes
                    | AttributesAndChildResources
                    | AttributesAndChildReferences
                    | ChildReferences
                    | ChildResources
            ),
            Operation::Notify => false,
        }
    }
}

/// `rt.rtv` (m2m:responseType).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    NonBlockingSynch,
    NonBlockingAsynch,
    Blocking,
    FlexBlocking,
    NoResponse,
}

impl ResponseType {
    pub fn from_number(n: u64) -> Option<ResponseType> {
        Some(match n {
            1 => ResponseType::NonBlockingSynch,
            2 => ResponseType::NonBlockingAsynch,
            3 => ResponseType::Blocking,
            4 => ResponseType::FlexBlocking,
            5 => ResponseType::NoResponse,
            _ => return None,
        })
    }

    /// The number [`ResponseType::from_number`] reads.
    pub fn number(self) -> u64 {
        match self {
            ResponseType::NonBlockingSynch => 1,
            ResponseType::NonBlockingAsynch => 2,
            ResponseType::Blocking => 3,
            ResponseType::FlexBlocking => 4,
            ResponseType::NoResponse => 5,
        }
    }
}

/// A request primitive. Optional parameters a binding did not receive are `None`/empty;
/// numeric parameters keep the raw number so the pipeline reports invalid values itself.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub op: Option<Operation>,
    pub to: String,
    pub fr: Option<String>,
    pub rqi: Option<String>,
    pub rvi: Option<String>,
    /// Raw `ty` number (CREATE only).
    pub ty: Option<u64>,
    pub pc: Option<Value>,
    /// Raw `rcn` number.
    pub rcn: Option<u64>,
    /// Raw `drt` number.
    pub drt: Option<u64>,
    pub rt: Option<ResponseType>,
    pub rt_nu: Option<Vec<String>>,
    pub rp: Option<String>,
    pub rqet: Option<String>,
    pub rset: Option<String>,
    pub oet: Option<String>,
    pub ot: Option<String>,
    pub ec: Option<String>,
    pub da: Option<bool>,
    pub gid: Option<String>,
    pub vsi: Option<String>,
    pub rids: Vec<String>,
    pub tkns: Vec<String>,
    pub tids: Vec<String>,
    pub ltids: Vec<String>,
    pub tqi: Option<bool>,
    pub fc: FilterCriteria,
    /// Attribute list of a partial RETRIEVE (`atrl` query or `to#attr`).
    pub atrl: Vec<String>,
}

impl Request {
    /// The request identifier, or "" when the binding received none.
    pub fn rqi(&self) -> &str {
        self.rqi.as_deref().unwrap_or("")
    }
}

/// A response primitive.
#[derive(Clone, Debug)]
pub struct Response {
    pub rsc: Rsc,
    pub rqi: String,
    pub rvi: Option<String>,
    pub pc: Option<Value>,
    /// `fr`: the hosting CSE-ID.
    pub fr: Option<String>,
    pub to: Option<String>,
    pub ot: Option<String>,
    /// Result Expiration Timestamp: the request's `rset`, echoed (TS-0001 8.1.3).
    pub rset: Option<String>,
    pub vsi: Option<String>,
    /// Address of a created resource, sent as `Content-Location` (rcn 2/3).
    pub content_location: Option<String>,
    /// Content Status (`cnst`, TS-0001 8.1.2): [`CONTENT_STATUS_PARTIAL`] when the CSE
    /// cut the result short at one of its limits; `None` for a complete result.
    pub cnst: Option<u8>,
}

/// `cnst` of a partial result.
pub const CONTENT_STATUS_PARTIAL: u8 = 1;

impl Response {
    pub fn new(rsc: Rsc, rqi: impl Into<String>) -> Response {
        Response {
            rsc,
            rqi: rqi.into(),
            rvi: None,
            pc: None,
            fr: None,
            to: None,
            ot: None,
            rset: None,
            vsi: None,
            content_location: None,
            cnst: None,
        }
    }

    /// An error response carrying `{"m2m:dbg": reason}`, or the Token Request
    /// Information of a 4103 that carries one (TS-0003 7.3.2.3).
    pub fn error(err: &crate::RequestError, rqi: impl Into<String>) -> Response {
        let mut r = Response::new(err.rsc(), rqi);
        r.pc = Some(match err {
            crate::RequestError::TokenRequestInfo(tqf) => (**tqf).clone(),
            _ => serde_json::json!({ "m2m:dbg": err.reason() }),
        });
        r
    }
}
