//! `bastion keystore init|generate|list|delete` run as a process, on an encrypted file
//! store and on a real SoftHSM2 token (`scripts/softhsm-env`; under `CI=true` a missing
//! SoftHSM2 fails, elsewhere the token test is skipped with the reason printed).

use crate::common;

use common::softhsm::softhsm;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bastion");

/// The binary with no key-store secret inherited from the environment.
fn keystore(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd)
        .env_remove("BASTION_CREDENTIALS_KEY")
        .env_remove("BASTION_PKCS11_PIN")
        .arg("keystore")
        .args(args)
        .envs(env.iter().copied());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
}

fn refused(out: &Output, status: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(status),
        "stdout: {}",
        text(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    text(&out.stderr)
}

#[test]
fn keystore_file_store_init_generate_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("store.key");
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store_path = dir.path().join("keys.store");
    let spec = format!("file:{}", store_path.display());
    let key = key_file.to_str().unwrap();
    let with = |rest: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--store".to_owned(),
            spec.clone(),
            "--key-file".to_owned(),
            key.to_owned(),
        ]);
        args
    };
    let run = |rest: &[&str]| {
        let args = with(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        keystore(dir.path(), &args, &[])
    };

    assert_eq!(
        ok(&run(&["init"])),
        format!("ready {spec}: protection level 1 (software)\n")
    );
    assert_eq!(
        refused(&run(&["init"]), 2),
        format!(
            "bastion: error: {} exists already: a key store is never overwritten\n",
            store_path.display()
        )
    );
    assert_eq!(
        ok(&run(&["generate", "--name", "ke", "--kind", "secret"])),
        "generated ke\tsecret-32\tnon-exportable\n"
    );
    assert_eq!(
        ok(&run(&[
            "generate",
            "--name",
            "kpsa",
            "--kind",
            "secret",
            "--len",
            "16",
            "--exportable"
        ])),
        "generated kpsa\tsecret-16\texportable\n"
    );
    let p256 = ok(&run(&["generate", "--name", "tls", "--kind", "p256"]));
    assert!(
        p256.starts_with("generated tls\tec-p256\tnon-exportable\n-----BEGIN PUBLIC KEY-----\n"),
        "{p256}"
    );
    assert!(!p256.contains("PRIVATE"));
    assert_eq!(
        ok(&run(&["list"])),
        "# protection level 1 (software)\n\
         ke\tsecret-32\tnon-exportable\n\
         kpsa\tsecret-16\texportable\n\
         tls\tec-p256\tnon-exportable\n"
    );
    // Only an exportable secret leaves, and only when asked for.
    let exported = ok(&run(&["export", "--name", "kpsa"]));
    assert_eq!(exported.len(), 33, "{exported:?}");
    assert!(exported.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        refused(&run(&["export", "--name", "ke"]), 2),
        "bastion: error: key \"ke\" is non-exportable: it is used only inside the store\n"
    );
    assert_eq!(
        refused(&run(&["export", "--name", "tls"]), 2),
        "bastion: error: key \"tls\" is not a secret key\n"
    );
    assert_eq!(ok(&run(&["delete", "--name", "ke"])), "deleted ke\n");
    assert_eq!(
        refused(&run(&["delete", "--name", "ke"]), 2),
        "bastion: error: no key \"ke\"\n"
    );
    assert_eq!(
        refused(&run(&["generate", "--name", "kpsa", "--kind", "secret"]), 2),
        "bastion: error: key \"kpsa\" already exists\n"
    );
    assert_eq!(
        refused(&run(&["generate", "--name", "a b", "--kind", "secret"]), 2),
        "bastion: error: invalid key name \"a b\": expected 1 to 64 characters of [A-Za-z0-9._-]\n"
    );
    assert_eq!(
        refused(
            &run(&["generate", "--name", "x", "--kind", "secret", "--len", "8"]),
            2
        ),
        "bastion: error: a secret key must be 16 to 64 bytes, got 8\n"
    );
    assert_eq!(
        refused(
            &run(&["generate", "--name", "x", "--kind", "p256", "--exportable"]),
            2
        ),
        "bastion: error: a P-256 private key never leaves the store: --exportable is for secrets\n"
    );
    assert_eq!(
        ok(&run(&["list"])),
        "# protection level 1 (software)\nkpsa\tsecret-16\texportable\ntls\tec-p256\tnon-exportable\n"
    );

    // Without the store key, or with another one, nothing is opened.
    let spec_only = ["list", "--store", spec.as_str()];
    assert_eq!(
        refused(&keystore(dir.path(), &spec_only, &[]), 2),
        "bastion: error: no credentials key: set BASTION_CREDENTIALS_KEY or give a key file\n"
    );
    let other = "cd".repeat(32);
    assert_eq!(
        refused(
            &keystore(
                dir.path(),
                &spec_only,
                &[("BASTION_CREDENTIALS_KEY", &other)]
            ),
            1
        ),
        format!(
            "bastion: error: {}: cannot decrypt (wrong key or tampered file)\n",
            store_path.display()
        )
    );
    assert_eq!(
        refused(&keystore(dir.path(), &["list", "--store", "keys.store"], &[]), 2),
        "bastion: error: invalid key store \"keys.store\": expected file:PATH or pkcs11:MODULE?token=LABEL[&level=N]\n"
    );
}

#[test]
fn keystore_pkcs11_token_generate_list_delete() {
    let Some(token) = softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let conf = token.conf.clone();
    let pin = token.pin.clone();
    let spec = token.spec();
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("BASTION_PKCS11_PIN", pin.as_str()),
    ];
    let name = format!("cli-{}", std::process::id());
    let run = |rest: &[&str], env: &[(&str, &str)]| {
        let mut args = rest.to_vec();
        args.extend(["--store", spec.as_str()]);
        keystore(dir.path(), &args, env)
    };

    assert_eq!(
        ok(&run(&["init"], &env)),
        format!("ready {spec}: protection level 1 (software)\n")
    );
    let generated = ok(&run(&["generate", "--name", &name, "--kind", "p256"], &env));
    assert!(
        generated.starts_with(&format!(
            "generated {name}\tec-p256\tnon-exportable\n-----BEGIN PUBLIC KEY-----\n"
        )),
        "{generated}"
    );
    let listed = ok(&run(&["list"], &env));
    assert!(
        listed.starts_with("# protection level 1 (software)\n"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("\n{name}\tec-p256\tnon-exportable\n")),
        "{listed}"
    );
    assert_eq!(
        ok(&run(&["delete", "--name", &name], &env)),
        format!("deleted {name}\n")
    );
    assert!(!ok(&run(&["list"], &env)).contains(&name));

    // The PIN comes from a file or the environment; a wrong one opens nothing.
    assert_eq!(
        refused(&run(&["list"], &[("SOFTHSM2_CONF", conf.as_str())]), 2),
        "bastion: error: no PKCS#11 PIN: give a PIN file or set BASTION_PKCS11_PIN\n"
    );
    let wrong = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("BASTION_PKCS11_PIN", "wrong-pin"),
    ];
    assert_eq!(
        refused(&run(&["list"], &wrong), 2),
        "bastion: error: the PIN of PKCS#11 token \"bastion-test\" is incorrect\n"
    );
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, &pin).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listed = ok(&run(
        &["list", "--pin-file", pin_file.to_str().unwrap()],
        &[("SOFTHSM2_CONF", conf.as_str())],
    ));
    assert!(listed.starts_with("# protection level 1 (software)\n"));
}
