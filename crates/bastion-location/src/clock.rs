//! The wall clock the PIP ages fixes with, injectable so that staleness (TS-0003 annex F:
//! a location must be current to be used) can be tested without sleeping. It is the
//! workspace's one clock (`bastion_proto::clock`), so the PIP and the CSE can share one.

pub use bastion_proto::clock::{Clock, ManualClock, SystemClock};
