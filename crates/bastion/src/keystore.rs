//! `bastion keystore init|generate|list|delete|export`: the operator's view of a key
//! store (`bastion_keystore`). It owns the flags and the output; the stores are the
//! crate's. Output names keys, kinds and policies, never key bytes, except the exportable
//! secret `export` is asked for.

use bastion_keystore::{
    ExportPolicy, KeyInfo, KeyName, KeyStore, KeyStoreError, StoreSecrets, StoreSpec,
};

use crate::cli::{KeystoreArgs, KeystoreCommand, KeystoreKind};
use crate::Failure;

/// Runs one `keystore` command and returns what it prints.
pub fn run(command: &KeystoreCommand) -> Result<String, Failure> {
    match command {
        KeystoreCommand::Init(args) => {
            let (spec, secrets) = spec(args)?;
            let store = bastion_keystore::create(&spec, &secrets).map_err(failure)?;
            Ok(format!(
                "ready {spec}: protection level {}\n",
                describe(store.as_ref())
            ))
        }
        KeystoreCommand::Generate(args) => {
            let store = open(&args.store)?;
            let name = KeyName::new(&args.name).map_err(failure)?;
            match args.kind {
                KeystoreKind::Secret => {
                    let export = match args.exportable {
                        true => ExportPolicy::Exportable,
                        false => ExportPolicy::NonExportable,
                    };
                    let info = store
                        .generate_secret(&name, args.len, export)
                        .map_err(failure)?;
                    Ok(format!("generated {}", line(&info)))
                }
                KeystoreKind::P256 => {
                    if args.exportable {
                        return Err(Failure::Config(
                            "a P-256 private key never leaves the store: --exportable is for secrets"
                                .to_owned(),
                        ));
                    }
                    let public = store.generate_p256(&name).map_err(failure)?;
                    let info = KeyInfo {
                        name,
                        kind: bastion_keystore::KeyKind::EcP256,
                        export: ExportPolicy::NonExportable,
                    };
                    Ok(format!(
                        "generated {}{}",
                        line(&info),
                        public.to_pem().map_err(failure)?
                    ))
                }
            }
        }
        KeystoreCommand::List(args) => {
            let store = open(args)?;
            let keys = store.list().map_err(failure)?;
            let mut out = format!("# protection level {}\n", describe(store.as_ref()));
            out.extend(keys.iter().map(line));
            Ok(out)
        }
        KeystoreCommand::Delete(args) => {
            let store = open(&args.store)?;
            let name = KeyName::new(&args.name).map_err(failure)?;
            store.delete(&name).map_err(failure)?;
            Ok(format!("deleted {name}\n"))
        }
        KeystoreCommand::Export(args) => {
            let store = open(&args.store)?;
            let name = KeyName::new(&args.name).map_err(failure)?;
            let secret = store.export_secret(&name).map_err(failure)?;
            let mut hex = bastion_keys::hex::encode_secret(secret.expose());
            hex.push('\n');
            Ok(hex.to_string())
        }
    }
}

fn spec(args: &KeystoreArgs) -> Result<(StoreSpec, StoreSecrets), Failure> {
    let spec = StoreSpec::parse(&args.store).map_err(failure)?;
    let secrets = StoreSecrets {
        key_file: args.key_file.clone(),
        pin_file: args.pin_file.clone(),
    };
    Ok((spec, secrets))
}

fn open(args: &KeystoreArgs) -> Result<Box<dyn KeyStore>, Failure> {
    let (spec, secrets) = spec(args)?;
    bastion_keystore::open(&spec, &secrets).map_err(failure)
}

/// `1 (software)`: the level's number and name.
fn describe(store: &dyn KeyStore) -> String {
    let level = store.protection_level();
    let text = level.to_string();
    text.strip_prefix("level ").unwrap_or(&text).to_owned()
}

/// `NAME  KIND  EXPORT`, tab-separated.
fn line(info: &KeyInfo) -> String {
    format!("{}\t{}\t{}\n", info.name, info.kind, info.export)
}

fn failure(e: KeyStoreError) -> Failure {
    match e.is_usage() {
        true => Failure::Config(e.to_string()),
        false => Failure::Runtime(e.to_string()),
    }
}
