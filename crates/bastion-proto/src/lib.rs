//! The oneM2M protocol model: primitives, status codes, resource types, identifiers,
//! timestamps and the attribute policies of every implemented resource type.
//!
//! Pure and I/O-free: nothing here touches a socket or a file, and time is read only
//! through a [`clock::Clock`] the caller chooses (most functions take the time as an
//! argument). Bindings decode into [`Request`] and encode from [`Response`]; the CSE
//! pipeline works only on these types.
#![forbid(unsafe_code)]

pub mod attrs;
pub mod clock;
pub mod error;
pub mod filter;
pub mod flex;
pub mod id;
pub mod json;
pub mod primitive;
pub mod rsc;
pub mod security_info;
pub mod time;
pub mod types;
pub mod wire;

pub use error::RequestError;
pub use filter::FilterCriteria;
pub use primitive::{Operation, Request, Response, ResultContent};
pub use rsc::Rsc;
pub use types::ResourceType;
pub use wire::Serialization;
