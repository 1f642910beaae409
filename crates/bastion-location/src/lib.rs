//! Bastion's location Policy Information Point (TS-0003 6.2.2 PIP, 7.1.2 `rq_loc`,
//! annex F): where an originator is, and in which country, for the `aclr` context of
//! access-control rules. The PDP (`bastion-policy`) decides circle containment; this
//! crate only supplies coordinates and countries, from memory, through
//! [`bastion_policy::LocationService`].
//!
//! ```text
//!  [location] config ──► LocationPip ◄── report_device_location (opt-in only)
//!                          │   ▲
//!   PEP: locate/country ◄──┘   │ fixes
//!                              │
//!   OMA TL v1 server ──notifications──► router()/serve()    (network.rs)
//!         ▲   ▲                         poll_once/spawn_polling
//!         │   └── GET queries/location
//!         └────── POST/DELETE subscriptions/area/circle ◄── set_circles
//! ```
//!
//! Modules:
//!
//! * [`config`]: the `[location]` TOML section;
//! * [`pip`](mod@pip): [`LocationPip`], the source precedence and device reports;
//! * [`network`]: the OMA RESTful NetAPI Terminal Location v1 client and receiver;
//! * `oma` (private): that API's JSON;
//! * [`country`]: coordinates → country, offline;
//! * [`prefix`]: the operator's address prefix → country table;
//! * [`clock`]: the injectable clock fixes are aged with;
//! * [`error`]: [`LocationError`], [`NotificationError`].
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod country;
pub mod error;
pub mod network;
mod oma;
pub mod pip;
pub mod prefix;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CountryPrefix, LocationConfig, NetworkConfig, StaticNode, Terminal};
pub use error::{LocationError, NotificationError};
pub use network::{Circle, NotificationOutcome, SyncReport, MAX_NOTIFICATION_BYTES};
pub use oma::Criteria;
pub use pip::{DeviceReport, LocationPip, MAX_DEVICE_FIXES};
