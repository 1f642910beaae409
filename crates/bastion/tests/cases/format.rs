//! The case format: what one conformance case says, read from `tests/cases/data/*.json`.
//!
//! A case is set-up steps, one request primitive with its expected `rsc` and body checks,
//! and optional steps after it (e.g. "nothing was created"). Every step is a request
//! primitive; a step's `rsc` and `body` are checked when given. Strings may name variables
//! as `${name}`: a step's `save` binds a name to a value of its response (a JSON pointer),
//! for identifiers the CSE generates. `${now+N}` and `${now-N}` are the timestamp N seconds
//! from when the step is sent.
//!
//! ```json
//! {"name": "ts0004_7_4_7_2_latest_of_empty_container_is_not_found",
//!  "setup": [{"op": "create", "to": "cse-in", "fr": "Cowner", "ty": 2,
//!             "pc": {"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"]}}, "rsc": 2001},
//!            {"op": "create", "to": "cse-in/Cowner", "fr": "Cowner", "ty": 3,
//!             "pc": {"m2m:cnt": {"rn": "cnt"}}, "rsc": 2001, "save": {"cnt": "/m2m:cnt/ri"}}],
//!  "request": {"op": "retrieve", "to": "${cnt}/la", "fr": "Cowner"},
//!  "expect": {"rsc": 4004, "body": [{"path": "/m2m:dbg", "present": true}]}}
//! ```
//!
//! `to` is the primitive's address (CSE-relative, `/`SP-relative or `//`absolute); the
//! HTTP runner maps it to a path as TS-0009 asks. `rcn`, `drt`, `atrl`, `rqet`, `rset`
//! and `fc` (filter members and attribute conditions by short name, a list for a
//! multi-valued member) are primitive parameters; `omit` sends `rqi` or `rvi` absent.
//! `rvi` (default "3") is the release the step speaks; every runner checks that the
//! response echoes it (a 4001 excepted). A check has a JSON pointer `path` and exactly one
//! of `equals`, `present`, `absent`, `count`, `contains`, `lacks`.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

/// One case file: a list of cases sharing a topic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `ts0001_…`/`ts0004_…`/`ts0009_…`: the clause it checks, then what it checks.
    pub name: String,
    #[serde(default)]
    pub setup: Vec<Step>,
    pub request: Step,
    pub expect: Expect,
    #[serde(default)]
    pub after: Vec<Step>,
    /// Runs under one runner only; `why` says what the other cannot express.
    #[serde(default)]
    pub only: Option<Only>,
    /// Over HTTP, runs in these serializations only (`json`, `cbor`, `xml`); `why` says
    /// what the others cannot carry.
    #[serde(default)]
    pub only_in: Option<OnlyIn>,
}

/// A case that some serializations cannot carry (XML text has no JSON types).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlyIn {
    pub serializations: Vec<String>,
    pub why: String,
}

/// A case that only one runner can carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Only {
    pub runner: RunnerKind,
    pub why: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunnerKind {
    InProcess,
    Http,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Retrieve,
    Update,
    Delete,
    Notify,
}

/// A request parameter the runner would otherwise fill in, sent absent instead.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Omit {
    Rqi,
    Rvi,
}

/// One request primitive (TS-0004 7.2.1.1) and, for set-up and after steps, what its
/// response must be.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub op: Op,
    pub to: String,
    #[serde(default)]
    pub fr: Option<String>,
    #[serde(default)]
    pub ty: Option<u64>,
    /// Default: a fresh identifier per step.
    #[serde(default)]
    pub rqi: Option<String>,
    /// Default: "3".
    #[serde(default)]
    pub rvi: Option<String>,
    #[serde(default)]
    pub omit: Vec<Omit>,
    #[serde(default)]
    pub pc: Option<Value>,
    #[serde(default)]
    pub rcn: Option<u64>,
    #[serde(default)]
    pub drt: Option<u64>,
    #[serde(default)]
    pub atrl: Vec<String>,
    /// Request and result expiration timestamps (`rqet`, `rset`), e.g. `${now+60}`.
    #[serde(default)]
    pub rqet: Option<String>,
    #[serde(default)]
    pub rset: Option<String>,
    /// Filter criteria members and attribute conditions by their short names; a list is
    /// a multi-valued member.
    #[serde(default)]
    pub fc: Map<String, Value>,
    #[serde(default)]
    pub rsc: Option<u16>,
    #[serde(default)]
    pub body: Vec<Check>,
    /// Variable name → JSON pointer into the response content.
    #[serde(default)]
    pub save: Map<String, Value>,
    /// The identity of the security association the step arrives over (a CSE's CSE-ID,
    /// as a registered CSE's requests do); only the in-process runner can set one.
    #[serde(default)]
    pub association: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub rsc: u16,
    #[serde(default)]
    pub body: Vec<Check>,
}

/// One check on the response content at a JSON pointer (`/m2m:cnt/cni`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub path: String,
    #[serde(default, deserialize_with = "given")]
    pub equals: Option<Value>,
    #[serde(default)]
    pub present: Option<bool>,
    #[serde(default)]
    pub absent: Option<bool>,
    /// Length of an array (or number of members of an object).
    #[serde(default)]
    pub count: Option<usize>,
    /// An array holding this element.
    #[serde(default, deserialize_with = "given")]
    pub contains: Option<Value>,
    /// An array not holding this element.
    #[serde(default, deserialize_with = "given")]
    pub lacks: Option<Value>,
}

/// A member that is present, `null` included (`"equals": null` checks for no content).
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Every case of every file under `dir`, in file-name order; a file that does not parse,
/// or two cases of one name, fail the run.
pub fn load_all(dir: &Path) -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read case file");
        let parsed: CaseFile = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a case file: {e}", file.display()));
        cases.extend(parsed.cases);
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        panic!("two cases are named {}", w[0]);
    }
    for case in &cases {
        for check in case.expect.body.iter().chain(
            case.setup
                .iter()
                .chain(&case.after)
                .flat_map(|s| s.body.iter()),
        ) {
            check.validate(&case.name);
        }
    }
    cases
}

impl Check {
    /// Exactly one assertion per check, so a typo cannot make a check that asserts nothing.
    fn validate(&self, case: &str) {
        let set = [
            self.equals.is_some(),
            self.present.is_some(),
            self.absent.is_some(),
            self.count.is_some(),
            self.contains.is_some(),
            self.lacks.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        assert_eq!(
            set, 1,
            "{case}: check of {} must assert exactly one thing",
            self.path
        );
        assert!(
            self.path.is_empty() || self.path.starts_with('/'),
            "{case}: {} is not a JSON pointer",
            self.path
        );
    }
}
