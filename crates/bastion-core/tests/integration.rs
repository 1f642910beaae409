//! The core's integration tests, as one test binary: each module below is one file under
//! tests/, `common` the harness they share.

mod common;

mod clock;
mod deletion_count;
mod device_management;
mod enforcement;
mod execution_time;
mod flex_container;
mod impersonation;
mod layering;
mod location_policy;
mod missing_data;
mod notification_target_policy;
mod partial_retrieve;
mod schedule;
mod store_rows;

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
