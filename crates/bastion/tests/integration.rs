//! The integration tests of the `bastion` binary, as one test binary: each module below
//! was a test file of its own, and is still one file under tests/ (`cases` and `common`
//! are the harness they share). A test is named by its file, as in
//! `cargo test -p bastion --test integration conformance_cases::`.

mod cases;
mod common;

mod acme_interop;
mod announce;
mod cli;
mod coap;
mod coaps;
mod conformance_access;
mod conformance_bad_input;
mod conformance_cases;
mod conformance_container;
mod conformance_contexts;
mod conformance_discovery;
mod conformance_http;
mod conformance_rbac;
mod conformance_requests;
mod conformance_resources;
mod conformance_restart;
mod das;
mod das_availability;
mod dynamic_authorization;
mod enrolment;
mod enrolment_instructions;
mod est;
mod federation;
mod gba;
mod groups_fanout;
mod keystore;
mod location;
mod maf;
mod mef_client;
mod mqtt;
mod nonblocking;
mod notification_target_removal;
mod notifications;
mod operators;
mod peer_http_auth;
mod releases;
mod security_associations;
mod security_availability;
mod security_confidentiality;
mod security_identity;
mod serializations;
mod time_series;
mod tls;
mod websocket;

/// With `autotests = false` a file under tests/ runs only once it is declared above.
#[test]
fn every_test_file_is_declared() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let root = std::fs::read_to_string(dir.join("integration.rs")).expect("read integration.rs");
    for entry in std::fs::read_dir(&dir).expect("read tests/") {
        let path = entry.expect("directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && stem != "integration" {
            let declaration = format!("\nmod {stem};\n");
            assert!(
                root.contains(&declaration),
                "tests/{stem}.rs is not declared"
            );
        }
    }
}
