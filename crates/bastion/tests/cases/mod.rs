//! Conformance cases as data (`data/*.json`, format in `format.rs`): the case format, the
//! steps every runner shares (variables, checks, reports) and the runners: one through
//! the core in-process, and one each over the HTTP, the MQTT, the CoAP and the WebSocket
//! bindings of the real binary.

pub mod format;
pub mod in_process;
pub mod over_coap;
pub mod over_http;
pub mod over_mqtt;
pub mod over_ws;

use bastion_proto::clock::{Clock, SystemClock};
use format::{Case, Check, RunnerKind, Step};
use serde_json::{Map, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the case files live.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases/data")
}

/// What a runner observed for one request primitive.
pub struct Outcome {
    pub rsc: u16,
    /// The response content; `Null` when there is none.
    pub pc: Value,
    /// Binding-level disagreements (e.g. an HTTP status that is not the mapping of the
    /// rsc), each a failure of the step.
    pub problems: Vec<String>,
}

/// One way of carrying a request primitive to a fresh CSE and back.
pub trait Target {
    /// Sends `step` (variables already resolved) with request identifier `rqi`
    /// (`None`: the step omits it).
    fn send(&self, step: &Step, rqi: Option<String>) -> impl Future<Output = Outcome>;
}

/// Whether `case` runs under `runner`; says so when it does not.
pub fn runs_under(case: &Case, runner: RunnerKind) -> bool {
    match &case.only {
        Some(only) if only.runner != runner => {
            eprintln!("{}: {:?} only: {}", case.name, only.runner, only.why);
            false
        }
        _ => true,
    }
}

/// Whether `case` runs over HTTP in `serialization`; says why when it does not.
pub fn runs_in(case: &Case, serialization: bastion_proto::wire::Serialization) -> bool {
    match &case.only_in {
        Some(only)
            if !only
                .serializations
                .iter()
                .any(|s| s == serialization.name()) =>
        {
            eprintln!(
                "{}: not in {}: {}",
                case.name,
                serialization.label(),
                only.why
            );
            false
        }
        _ => true,
    }
}

/// The `rvi` a step sends: its own, "3" by default, `None` when it omits it.
pub fn sent_rvi(step: &Step) -> Option<String> {
    match step.omit.contains(&format::Omit::Rvi) {
        true => None,
        false => Some(step.rvi.clone().unwrap_or_else(|| "3".to_owned())),
    }
}

/// A response speaks the release of its request (TS-0009 6.4.22: `X-M2M-RVI` both ways):
/// the problem when it does not. A refused release (4001) cannot be echoed.
pub fn rvi_echo_problem(sent: Option<&str>, rsc: u16, got: Option<&str>) -> Option<String> {
    let sent = sent.filter(|_| rsc != 4001)?;
    (got != Some(sent)).then(|| format!("rvi {sent} not echoed: got {got:?}"))
}

static NEXT_RQI: AtomicU64 = AtomicU64::new(1);

/// Runs one case against `target`; `Err` holds every way it failed, one per line.
pub async fn run_case<T: Target>(target: &T, case: &Case) -> Result<(), String> {
    let mut vars = Map::new();
    for (i, step) in case.setup.iter().enumerate() {
        run_step(
            target,
            step,
            step.rsc,
            &step.body,
            &mut vars,
            &format!("setup {}", i + 1),
        )
        .await?;
    }
    run_step(
        target,
        &case.request,
        Some(case.expect.rsc),
        &case.expect.body,
        &mut vars,
        "request",
    )
    .await?;
    for (i, step) in case.after.iter().enumerate() {
        run_step(
            target,
            step,
            step.rsc,
            &step.body,
            &mut vars,
            &format!("after {}", i + 1),
        )
        .await?;
    }
    Ok(())
}

async fn run_step<T: Target>(
    target: &T,
    raw: &Step,
    rsc: Option<u16>,
    checks: &[Check],
    vars: &mut Map<String, Value>,
    label: &str,
) -> Result<(), String> {
    let step = resolve_step(raw, vars).map_err(|e| format!("{label}: {e}"))?;
    let rqi = match step.omit.contains(&format::Omit::Rqi) {
        true => None,
        false => Some(
            step.rqi
                .clone()
                .unwrap_or_else(|| format!("case-{}", NEXT_RQI.fetch_add(1, Ordering::Relaxed))),
        ),
    };
    let out = target.send(&step, rqi).await;
    let what = format!("{label} {:?} {}", step.op, step.to);
    let mut failures: Vec<String> = out
        .problems
        .iter()
        .map(|p| format!("{what}: {p}"))
        .collect();
    if let Some(want) = rsc {
        if out.rsc != want {
            failures.push(format!(
                "{what}: expected rsc {want}, got rsc {}; content: {}",
                out.rsc, out.pc
            ));
        }
    }
    if failures.is_empty() {
        for check in checks {
            let check = resolve_check(check, vars).map_err(|e| format!("{what}: {e}"))?;
            if let Err(e) = evaluate(&check, &out.pc) {
                failures.push(format!("{what}: {e}; content: {}", out.pc));
            }
        }
    }
    if failures.is_empty() {
        for (name, pointer) in &step.save {
            let pointer = pointer.as_str().unwrap_or_default();
            match out.pc.pointer(pointer) {
                Some(v) => {
                    vars.insert(name.clone(), v.clone());
                }
                None => failures.push(format!(
                    "{what}: nothing at {pointer} to save as {name}; content: {}",
                    out.pc
                )),
            }
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("\n    ")),
    }
}

/// One check against the content; `Err` says expected against actual.
fn evaluate(check: &Check, pc: &Value) -> Result<(), String> {
    let at = pc.pointer(&check.path);
    let path = &check.path;
    if let Some(want) = &check.equals {
        return match at {
            Some(got) if got == want => Ok(()),
            Some(got) => Err(format!("{path}: expected {want}, got {got}")),
            None => Err(format!("{path}: expected {want}, got nothing")),
        };
    }
    if let Some(want) = check.present.or(check.absent.map(|a| !a)) {
        return match (want, at) {
            (true, Some(_)) | (false, None) => Ok(()),
            (true, None) => Err(format!("{path}: expected present, is absent")),
            (false, Some(got)) => Err(format!("{path}: expected absent, got {got}")),
        };
    }
    if let Some(want) = check.count {
        let got = match at {
            Some(Value::Array(a)) => Some(a.len()),
            Some(Value::Object(o)) => Some(o.len()),
            _ => None,
        };
        return match got {
            Some(n) if n == want => Ok(()),
            Some(n) => Err(format!("{path}: expected {want} entries, got {n}")),
            None => Err(format!("{path}: expected {want} entries, got no list")),
        };
    }
    let (element, wanted) = match (&check.contains, &check.lacks) {
        (Some(e), _) => (e, true),
        (None, Some(e)) => (e, false),
        (None, None) => return Err(format!("{path}: check asserts nothing")),
    };
    match at.and_then(Value::as_array) {
        Some(list) if list.contains(element) == wanted => Ok(()),
        Some(list) => Err(format!(
            "{path}: expected {} {element}, got {}",
            if wanted { "an element" } else { "no element" },
            Value::Array(list.clone())
        )),
        None => Err(format!("{path}: expected a list")),
    }
}

/// `step` with every `${name}` replaced by its saved value.
fn resolve_step(step: &Step, vars: &Map<String, Value>) -> Result<Step, String> {
    let mut out = step.clone();
    out.to = text(&step.to, vars)?;
    out.fr = step.fr.as_deref().map(|f| text(f, vars)).transpose()?;
    out.rqi = step.rqi.as_deref().map(|r| text(r, vars)).transpose()?;
    out.pc = step.pc.as_ref().map(|pc| value(pc, vars)).transpose()?;
    out.rqet = step.rqet.as_deref().map(|t| text(t, vars)).transpose()?;
    out.rset = step.rset.as_deref().map(|t| text(t, vars)).transpose()?;
    out.atrl = step
        .atrl
        .iter()
        .map(|a| text(a, vars))
        .collect::<Result<_, _>>()?;
    out.fc = step
        .fc
        .iter()
        .map(|(k, v)| Ok((k.clone(), value(v, vars)?)))
        .collect::<Result<_, String>>()?;
    Ok(out)
}

fn resolve_check(check: &Check, vars: &Map<String, Value>) -> Result<Check, String> {
    let mut out = check.clone();
    out.path = text(&check.path, vars)?;
    for slot in [&mut out.equals, &mut out.contains, &mut out.lacks] {
        if let Some(v) = slot.as_ref() {
            *slot = Some(value(v, vars)?);
        }
    }
    Ok(out)
}

/// A JSON value with variables replaced in its strings; a string that is exactly one
/// `${name}` takes the saved value as it is (a number stays a number).
fn value(v: &Value, vars: &Map<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => match whole_variable(s).and_then(|n| vars.get(n)) {
            Some(saved) => saved.clone(),
            None => Value::String(text(s, vars)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| value(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((text(k, vars)?, value(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn whole_variable(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${")?.strip_suffix('}')?;
    (!name.contains('}')).then_some(name)
}

/// `s` with every `${name}` replaced by the text of its saved value.
fn text(s: &str, vars: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated variable in {s:?}"))?;
        let name = &after[..end];
        match (vars.get(name), relative_time(name)) {
            (Some(Value::String(v)), _) => out.push_str(v),
            (Some(other), _) => out.push_str(&other.to_string()),
            (None, Some(ts)) => out.push_str(&ts),
            (None, None) => return Err(format!("variable {name} is not saved by an earlier step")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `now+N` / `now-N`: the oneM2M timestamp N seconds from when the step is sent, for
/// expiration times that must lie in the future (or the past) whenever the case runs.
fn relative_time(name: &str) -> Option<String> {
    let offset = name.strip_prefix("now")?;
    let seconds: i64 = match offset.strip_prefix('+') {
        Some(n) => n.parse().ok()?,
        None => -offset.strip_prefix('-')?.parse::<i64>().ok()?,
    };
    Some(SystemClock.timestamp().plus_seconds(seconds).format())
}

/// The text of one filter member or query value: a string as it is, anything else as JSON.
pub fn query_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Each value of a filter member: the elements of a list, or the one value.
pub fn member_values(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(query_text).collect(),
        one => vec![query_text(one)],
    }
}

/// Fails the test with every failing case, by name, when there is any.
pub fn report(runner: &str, ran: usize, failures: Vec<(String, String)>) {
    if failures.is_empty() {
        eprintln!("{runner}: {ran} cases passed");
        return;
    }
    let mut text = format!("{runner}: {} of {ran} cases failed\n", failures.len());
    for (name, why) in &failures {
        text.push_str(&format!("  {name}\n    {why}\n"));
    }
    panic!("{text}");
}
