//! `[flex]`: the specializations of `<flexContainer>` the CSE knows beyond the shipped
//! ones (docs/flex.md). The file section ([`FlexSection`]) names definition files; the
//! resolved form ([`Flex`]) holds the files and the registry read from them, so a bad
//! file is a configuration problem reported at start, never a surprise on a request.

use bastion_proto::flex::Specializations;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most definition files `[flex] definitions` may name.
const MAX_FILES: usize = 64;
/// The largest definition file read, bytes.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// `[flex]` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlexSection {
    /// Specialization files (JSON), read relative to the data directory when not
    /// absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definitions: Option<Vec<String>>,
}

/// The resolved `[flex]`: the files as configured and every specialization known.
#[derive(Clone, Debug)]
pub struct Flex {
    pub definitions: Vec<PathBuf>,
    pub specializations: Arc<Specializations>,
}

impl Default for Flex {
    fn default() -> Self {
        Flex {
            definitions: Vec::new(),
            specializations: Arc::new(Specializations::shipped()),
        }
    }
}

impl PartialEq for Flex {
    /// The same files make the same registry.
    fn eq(&self, other: &Self) -> bool {
        self.definitions == other.definitions
    }
}

impl Flex {
    /// Reads every named file into the shipped registry; each problem is reported.
    pub fn resolve(section: &FlexSection, data_dir: &Path) -> Result<Flex, Vec<String>> {
        let definitions: Vec<PathBuf> = section
            .definitions
            .iter()
            .flatten()
            .map(PathBuf::from)
            .collect();
        let mut problems = Vec::new();
        if definitions.len() > MAX_FILES {
            problems.push(format!(
                "[flex] definitions names more than {MAX_FILES} files"
            ));
        }
        let mut specs = Specializations::shipped();
        for file in definitions.iter().take(MAX_FILES) {
            let path = data_dir.join(file);
            let text = match std::fs::metadata(&path) {
                Ok(m) if m.len() > MAX_FILE_BYTES => {
                    problems.push(format!(
                        "[flex] {}: larger than {MAX_FILE_BYTES} bytes",
                        path.display()
                    ));
                    continue;
                }
                Ok(_) => std::fs::read_to_string(&path),
                Err(e) => Err(e),
            };
            match text {
                Ok(text) => {
                    if let Err(e) = specs.add_document(&text) {
                        problems.push(format!("[flex] {}: {e}", path.display()));
                    }
                }
                Err(e) => problems.push(format!("[flex] {}: {e}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(Flex {
                definitions,
                specializations: Arc::new(specs),
            })
        } else {
            Err(problems)
        }
    }

    /// The section that resolves to these settings.
    pub fn to_section(&self) -> FlexSection {
        FlexSection {
            definitions: Some(
                self.definitions
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_files_add_specializations_and_bad_ones_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = r#"{"specializations": [{"cnd": "org.example.lamp", "root": "exa:lamp",
            "attributes": [{"name": "on", "kind": "boolean", "mandatory": true}]}]}"#;
        std::fs::write(dir.path().join("lamp.json"), good).expect("write");
        std::fs::write(dir.path().join("bad.json"), "{\"specializations\": [").expect("write");
        let section = |files: &[&str]| FlexSection {
            definitions: Some(files.iter().map(|f| f.to_string()).collect()),
        };
        let flex = Flex::resolve(&section(&["lamp.json"]), dir.path()).expect("resolves");
        assert_eq!(
            flex.specializations.len(),
            Specializations::shipped().len() + 1
        );
        assert!(flex.specializations.by_cnd("org.example.lamp").is_some());
        let problems = Flex::resolve(&section(&["bad.json", "missing.json"]), dir.path())
            .expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("bad.json"), "{problems:?}");
        // The same file twice defines the same cnd twice.
        assert!(Flex::resolve(&section(&["lamp.json", "lamp.json"]), dir.path()).is_err());
    }
}
