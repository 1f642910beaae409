//! Owns what notifications cost in memory: each held event is a [`Payload`], a shared
//! reference to the event's JSON (one copy however many destinations it goes to) with a
//! [`Charge`] against the byte budgets of its destination and of the whole engine. The
//! charge is returned when the payload is dropped, whatever the way out (delivered,
//! dropped, superseded, abandoned), so no exit path can leak budget.
//!
//! Sizes are estimates of the event's memory ([`estimated_bytes`]): computed by one walk
//! of the value, without serializing it. Each destination is charged the full size of
//! every event it holds, also when another destination holds the same event, so the
//! engine-wide total over-states what is really held, never under-states it.

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A byte budget: what is charged against it now, and its limit.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` if they fit; concurrent takers cannot overshoot together.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Which budget refused a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverBudget {
    Destination,
    Total,
}

/// Bytes taken from a destination's budget and the engine's; given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: usize,
    budgets: Option<(Arc<Budget>, Arc<Budget>)>,
}

impl Charge {
    /// Charges `bytes` to `destination` and `total`, or neither.
    pub fn take(
        bytes: usize,
        destination: &Arc<Budget>,
        total: &Arc<Budget>,
    ) -> Result<Charge, OverBudget> {
        if !destination.take(bytes) {
            return Err(OverBudget::Destination);
        }
        if !total.take(bytes) {
            destination.give_back(bytes);
            return Err(OverBudget::Total);
        }
        Ok(Charge {
            bytes,
            budgets: Some((destination.clone(), total.clone())),
        })
    }

    /// Nothing charged.
    pub fn none() -> Charge {
        Charge {
            bytes: 0,
            budgets: None,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some((destination, total)) = &self.budgets {
            destination.give_back(self.bytes);
            total.give_back(self.bytes);
        }
    }
}

/// One event held for one destination.
#[derive(Debug)]
pub(crate) struct Payload {
    pub event: Arc<Value>,
    pub charge: Charge,
}

impl Payload {
    /// The event itself: moved out when this was its last holder, else copied.
    pub fn into_value(self) -> Value {
        Arc::try_unwrap(self.event).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// Estimated memory of `value`: its nodes, strings and object keys.
pub(crate) fn estimated_bytes(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    NODE + match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(estimated_bytes).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.len() + std::mem::size_of::<String>() + estimated_bytes(v))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn charges_are_given_back_on_drop_and_never_overshoot() {
        let dest = Budget::new(100);
        let total = Budget::new(150);
        let a = Charge::take(60, &dest, &total).unwrap();
        assert_eq!(
            Charge::take(50, &dest, &total).unwrap_err(),
            OverBudget::Destination
        );
        let other = Budget::new(100);
        let b = Charge::take(100, &other, &total).unwrap_err();
        assert_eq!(b, OverBudget::Total);
        assert_eq!(other.used(), 0, "a refused charge takes nothing");
        assert_eq!((dest.used(), total.used()), (60, 60));
        drop(a);
        assert_eq!((dest.used(), total.used()), (0, 0));
    }

    #[test]
    fn estimates_grow_with_content() {
        let small = estimated_bytes(&json!({"a": 1}));
        let big = estimated_bytes(&json!({"a": "x".repeat(1000)}));
        assert!(big >= small + 1000);
        assert!(estimated_bytes(&json!([1, 2, 3])) > estimated_bytes(&json!([1])));
    }

    #[test]
    fn a_shared_event_is_copied_out_only_while_another_holder_remains() {
        let event = Arc::new(json!({"n": 1}));
        let first = Payload {
            event: event.clone(),
            charge: Charge::none(),
        };
        let second = Payload {
            event,
            charge: Charge::none(),
        };
        assert_eq!(first.into_value(), json!({"n": 1}));
        assert_eq!(
            Arc::strong_count(&second.event),
            1,
            "the other holder keeps it"
        );
        assert_eq!(second.into_value(), json!({"n": 1}));
    }
}
