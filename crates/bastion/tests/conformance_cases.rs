//! Conformance cases as data (`tests/cases/data/*.json`), each run in-process through the
//! core, and over the HTTP, the MQTT, the CoAP (plain and over DTLS-PSK) and the WebSocket
//! bindings of the binary in every serialization of [`cases::over_http::SERIALIZATIONS`]. Each runner reports every
//! failing case by name. The MQTT runner needs the test broker (Mosquitto on
//! 127.0.0.1:1883): under `CI=true` its absence fails, elsewhere the runner says why and
//! skips.

use crate::cases;
use crate::common;

use bastion_proto::wire::Serialization;
use cases::format::{Case, RunnerKind};
use cases::in_process::InProcess;
use cases::over_http::{OverHttp, SERIALIZATIONS};
use std::sync::Arc;

/// Binaries started at once by the HTTP runner (the machine is shared).
const HTTP_PARALLEL: usize = 3;

fn all_cases() -> Vec<Case> {
    cases::format::load_all(&cases::data_dir())
}

#[test]
fn case_files_hold_enough_cases_for_both_runners() {
    let cases = all_cases();
    let both = cases.iter().filter(|c| c.only.is_none()).count();
    assert!(both >= 60, "only {both} cases run under both runners");
    for case in &cases {
        assert!(
            ["ts0001_", "ts0003_", "ts0004_", "ts0009_"]
                .iter()
                .any(|spec| case.name.starts_with(spec)),
            "{}: a case name starts with the clause it checks (TS-0001, TS-0003, TS-0004, TS-0009)",
            case.name
        );
        for name in case.only_in.iter().flat_map(|o| &o.serializations) {
            assert!(
                Serialization::from_name(name).is_some_and(|s| s.name() == name),
                "{}: only_in names an unknown serialization {name}",
                case.name
            );
        }
        let associated = std::iter::once(&case.request)
            .chain(&case.setup)
            .chain(&case.after)
            .any(|s| s.association.is_some());
        assert!(
            !associated
                || case
                    .only
                    .as_ref()
                    .is_some_and(|o| o.runner == RunnerKind::InProcess),
            "{}: a step over a security association runs in-process only",
            case.name
        );
        for step in case.setup.iter().chain(&case.after) {
            assert!(
                step.rsc.is_some(),
                "{}: every set-up and after step states its rsc",
                case.name
            );
        }
    }
}

/// Every serialization the wire layer has runs the cases over HTTP.
#[test]
fn every_serialization_runs_the_cases() {
    assert_eq!(SERIALIZATIONS, Serialization::ALL.as_slice());
}

#[tokio::test]
async fn cases_in_process() {
    let cases = all_cases();
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in cases
        .iter()
        .filter(|c| cases::runs_under(c, RunnerKind::InProcess))
    {
        ran += 1;
        let cse = InProcess::start().await;
        if let Err(why) = cases::run_case(&cse, case).await {
            failures.push((case.name.clone(), why));
        }
    }
    cases::report("in-process", ran, failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_over_http() {
    let cases: Arc<Vec<Case>> = Arc::new(all_cases());
    for &serialization in SERIALIZATIONS {
        let runnable: Vec<usize> = (0..cases.len())
            .filter(|&i| cases::runs_under(&cases[i], RunnerKind::Http))
            .filter(|&i| cases::runs_in(&cases[i], serialization))
            .collect();
        let ran = runnable.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(HTTP_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for i in runnable {
            let (cases, gate) = (cases.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                let server = tokio::task::spawn_blocking(common::Server::start)
                    .await
                    .expect("start the binary");
                let target = OverHttp {
                    server,
                    serialization,
                };
                let case = &cases[i];
                (i, cases::run_case(&target, case).await)
            });
        }
        let failures = failures_of(&cases, tasks).await;
        cases::report(&format!("HTTP {serialization:?}"), ran, failures);
    }
}

/// Why a binding's runner cannot carry a case at all, or in one serialization.
type CannotCarry = fn(&Case) -> Option<&'static str>;
type CannotCarryIn = fn(&Case, Serialization) -> Option<&'static str>;

/// The cases a binding's runner carries in `serialization`, in the order the filters
/// apply: a case meant for one runner only, one the binding cannot carry, one not written
/// for this serialization, one the binding cannot carry in it. Each one left out says why
/// (but the serialization filter, which every runner shares).
fn carried(
    cases: &[Case],
    serialization: Serialization,
    binding: &str,
    cannot_carry: CannotCarry,
    cannot_carry_in: Option<CannotCarryIn>,
) -> Vec<usize> {
    let left_out = |case: &Case, why: Option<String>| match why {
        Some(why) => {
            eprintln!("{}: {why}", case.name);
            false
        }
        None => true,
    };
    (0..cases.len())
        .filter(|&i| {
            // Either kind of `only` says another runner cannot carry the case.
            let only = cases[i].only.as_ref();
            left_out(
                &cases[i],
                only.map(|o| format!("{:?} only: {}", o.runner, o.why)),
            )
        })
        .filter(|&i| {
            let why = cannot_carry(&cases[i]).map(|why| format!("not over {binding}: {why}"));
            left_out(&cases[i], why)
        })
        .filter(|&i| cases::runs_in(&cases[i], serialization))
        .filter(|&i| {
            let why = cannot_carry_in
                .and_then(|excuse| excuse(&cases[i], serialization))
                .map(|why| format!("not over {binding} in {serialization:?}: {why}"));
            left_out(&cases[i], why)
        })
        .collect()
}

/// The failures of the case tasks, by case name, sorted.
async fn failures_of(
    cases: &[Case],
    mut tasks: tokio::task::JoinSet<(usize, Result<(), String>)>,
) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.expect("case task");
        if let Err(why) = result {
            failures.push((cases[i].name.clone(), why));
        }
    }
    failures.sort();
    failures
}

/// Whether the test broker answers; under `CI=true` its absence is a failure.
fn broker_available() -> bool {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 1883).into();
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the MQTT runner needs Mosquitto on 127.0.0.1:1883 under CI");
    }
    eprintln!("SKIPPED: no MQTT broker (Mosquitto) on 127.0.0.1:1883");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_over_mqtt() {
    if !broker_available() {
        return;
    }
    let cases: Arc<Vec<Case>> = Arc::new(all_cases());
    for &serialization in SERIALIZATIONS {
        let runnable = carried(
            &cases,
            serialization,
            "MQTT",
            cases::over_mqtt::cannot_carry,
            Some(cases::over_mqtt::cannot_carry_in),
        );
        let ran = runnable.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(HTTP_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for i in runnable {
            let (cases, gate) = (cases.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                let target = cases::over_mqtt::OverMqtt::start(serialization).await;
                (i, cases::run_case(&target, &cases[i]).await)
            });
        }
        let failures = failures_of(&cases, tasks).await;
        cases::report(&format!("MQTT {serialization:?}"), ran, failures);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_over_ws() {
    let cases: Arc<Vec<Case>> = Arc::new(all_cases());
    for &serialization in SERIALIZATIONS {
        let runnable = carried(
            &cases,
            serialization,
            "WebSocket",
            cases::over_ws::cannot_carry,
            Some(cases::over_ws::cannot_carry_in),
        );
        let ran = runnable.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(HTTP_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for i in runnable {
            let (cases, gate) = (cases.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                let target = cases::over_ws::OverWs::start(serialization).await;
                (i, cases::run_case(&target, &cases[i]).await)
            });
        }
        let failures = failures_of(&cases, tasks).await;
        cases::report(&format!("WebSocket {serialization:?}"), ran, failures);
    }
}

/// The cases over the CoAP binding (plain UDP), in every serialization. The runner's
/// client is its own (`cases/over_coap.rs`), so nothing external is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_over_coap() {
    let cases: Arc<Vec<Case>> = Arc::new(all_cases());
    for &serialization in SERIALIZATIONS {
        let runnable = carried(
            &cases,
            serialization,
            "CoAP",
            cases::over_coap::cannot_carry,
            None,
        );
        let ran = runnable.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(HTTP_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for i in runnable {
            let (cases, gate) = (cases.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                let target = cases::over_coap::OverCoap::start(serialization).await;
                (i, cases::run_case(&target, &cases[i]).await)
            });
        }
        let failures = failures_of(&cases, tasks).await;
        cases::report(&format!("CoAP {serialization:?}"), ran, failures);
    }
}

/// The cases over CoAP/DTLS-PSK (`coaps://`), in every serialization: each originator of
/// a case travels in its own association, bound to a PSK credential of its own
/// (`cases/over_coap.rs`, [`cases::over_coap::OverCoap::start_dtls`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_over_coaps() {
    let cases: Arc<Vec<Case>> = Arc::new(all_cases());
    for &serialization in SERIALIZATIONS {
        let runnable = carried(
            &cases,
            serialization,
            "CoAP/DTLS",
            cases::over_coap::cannot_carry_dtls,
            None,
        );
        let ran = runnable.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(HTTP_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for i in runnable {
            let (cases, gate) = (cases.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                let target = cases::over_coap::OverCoap::start_dtls(serialization, &cases[i]).await;
                (i, cases::run_case(&target, &cases[i]).await)
            });
        }
        let failures = failures_of(&cases, tasks).await;
        cases::report(&format!("CoAP/DTLS {serialization:?}"), ran, failures);
    }
}
