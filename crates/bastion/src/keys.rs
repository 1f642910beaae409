//! `bastion keys derive`: the command-line face of `bastion-keys`. It owns where Ke comes
//! from (flag, secret file, environment) and what is printed (the derived key, and the
//! KeID when given); the derivations themselves are `bastion_keys`'s.

use std::path::Path;

use bastion_keys::{derive_km, derive_kpsa, derive_kuc, hex, EnrolmentKey, KeyIdentifier, Suid};
use zeroize::Zeroizing;

use crate::cli::{DerivedKeyKind, KeysDeriveArgs};
use crate::Failure;

/// The environment variable Ke is read from when no flag names it.
const KE_ENV: &str = "BASTION_KE_HEX";

/// The derived key in hex on the first line; `key-id: KEID` on a second line when
/// `--ke-id` was given. Every refusal is a [`Failure::Config`] (exit status 2).
pub fn derive(args: &KeysDeriveArgs) -> Result<Zeroizing<String>, Failure> {
    let ke_id = args
        .ke_id
        .as_deref()
        .map(KeyIdentifier::parse)
        .transpose()
        .map_err(|e| bad(format!("--ke-id: {e}")))?;
    let inputs = DerivationInputs::from_args(args)?;
    let ke = enrolment_key(args)?;
    let key = match inputs {
        DerivationInputs::Km { maf_id } => derive_km(&ke, maf_id),
        DerivationInputs::Kpsa { enrolee_id } => derive_kpsa(&ke, enrolee_id),
        DerivationInputs::Kuc { suid, target_id } => derive_kuc(&ke, suid, target_id),
    }
    .map_err(|e| bad(e.to_string()))?;
    let mut out = Zeroizing::new(String::with_capacity(128));
    out.push_str(&key.to_hex());
    out.push('\n');
    if let Some(id) = ke_id {
        out.push_str(&format!("key-id: {id}\n"));
    }
    Ok(out)
}

/// The identity inputs of one derivation, checked against the kind asked for: each kind
/// takes its own flags and refuses the others', so a mistyped command fails rather than
/// printing a key derived from other inputs than intended.
enum DerivationInputs<'a> {
    Km { maf_id: &'a str },
    Kpsa { enrolee_id: &'a str },
    Kuc { suid: Suid, target_id: &'a str },
}

impl<'a> DerivationInputs<'a> {
    fn from_args(args: &'a KeysDeriveArgs) -> Result<DerivationInputs<'a>, Failure> {
        let given = [
            ("--maf-id", args.maf_id.is_some()),
            ("--enrolee-id", args.enrolee_id.is_some()),
            ("--suid", args.suid.is_some()),
            ("--target-id", args.target_id.is_some()),
        ];
        let (kind, wanted): (&str, &[&str]) = match args.kind {
            DerivedKeyKind::Km => ("km", &["--maf-id"]),
            DerivedKeyKind::Kpsa => ("kpsa", &["--enrolee-id"]),
            DerivedKeyKind::Kuc => ("kuc", &["--suid", "--target-id"]),
        };
        for (flag, present) in given {
            match (wanted.contains(&flag), present) {
                (true, false) => return Err(bad(format!("{kind} needs {flag}"))),
                (false, true) => return Err(bad(format!("{kind} does not take {flag}"))),
                _ => {}
            }
        }
        let text = |value: &'a Option<String>| value.as_deref().unwrap_or_default();
        Ok(match args.kind {
            DerivedKeyKind::Km => DerivationInputs::Km {
                maf_id: text(&args.maf_id),
            },
            DerivedKeyKind::Kpsa => DerivationInputs::Kpsa {
                enrolee_id: text(&args.enrolee_id),
            },
            DerivedKeyKind::Kuc => DerivationInputs::Kuc {
                suid: Suid::parse(text(&args.suid)).map_err(|e| bad(format!("--suid: {e}")))?,
                target_id: text(&args.target_id),
            },
        })
    }
}

/// Ke from the flag, else the secret file, else the environment.
fn enrolment_key(args: &KeysDeriveArgs) -> Result<EnrolmentKey, Failure> {
    let (source, text) = match (&args.ke_hex, &args.ke_file) {
        (Some(hex_text), _) => ("--ke-hex", Zeroizing::new(hex_text.clone())),
        (None, Some(path)) => ("--ke-file", read_ke_file(path)?),
        (None, None) => match std::env::var(KE_ENV) {
            Ok(value) => (KE_ENV, Zeroizing::new(value)),
            Err(_) => {
                return Err(bad(format!(
                    "no enrolment key: give --ke-hex, --ke-file or {KE_ENV}"
                )))
            }
        },
    };
    let bytes = hex::decode(text.trim()).ok_or_else(|| bad(format!("{source} is not hex")))?;
    EnrolmentKey::from_slice(&bytes).map_err(|e| bad(format!("{source}: {e}")))
}

fn read_ke_file(path: &Path) -> Result<Zeroizing<String>, Failure> {
    bastion_tls::secret::read_secret_text(path).map_err(|e| bad(e.to_string()))
}

fn bad(reason: String) -> Failure {
    Failure::Config(reason)
}
