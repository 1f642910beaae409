//! Feeds arbitrary query strings (`key=value&...`, percent-encoding left as sent) to the
//! filter-criteria reader shared by every binding, `FilterCriteria::take_query_param`.
//! It must never panic, and what it accepts must describe a valid filter: `fu` 1-3,
//! `fo` 1-2 when present.
#![no_main]

use bastion_proto::FilterCriteria;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let mut fc = FilterCriteria::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if fc.take_query_param(key, value).is_err() {
            return;
        }
    }
    if let Some(fu) = fc.fu {
        assert!((1..=3).contains(&fu), "accepted fu {fu}");
    }
    let _ = fc.is_discovery();
    let _ = fc.has_conditions();
    let _ = fc.is_present();
});
