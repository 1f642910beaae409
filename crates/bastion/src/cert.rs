//! `bastion cert ca|issue|csr|sign|crl`: thin wrappers of `bastion_tls::certs` that read
//! and write PEM files. Private keys are written with mode 0600 and never printed; an
//! existing output file is not overwritten.

use crate::cli::{
    CaFiles, CertCaArgs, CertCommand, CertCrlArgs, CertCsrArgs, CertIssueArgs, CertSignArgs,
};
use crate::Failure;
use bastion_tls::certs::{self, CertAndKey, Subject, Validity};
use std::io::Write;
use std::path::Path;

/// Runs one `cert` subcommand; returns what to print (the files written).
pub fn run(command: &CertCommand) -> Result<String, Failure> {
    match command {
        CertCommand::Ca(a) => ca(a),
        CertCommand::Issue(a) => issue(a),
        CertCommand::Csr(a) => csr(a),
        CertCommand::Sign(a) => sign(a),
        CertCommand::Crl(a) => crl(a),
    }
}

fn failed(e: bastion_tls::CertError) -> Failure {
    Failure::Runtime(e.to_string())
}

fn subject(id: &str, dns: &[String]) -> Result<Subject, Failure> {
    let subject = Subject::onem2m(id).map_err(|e| Failure::Config(e.to_string()))?;
    Ok(dns.iter().fold(subject, |s, name| s.with_dns(name)))
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))
}

fn load_ca(files: &CaFiles) -> Result<CertAndKey, Failure> {
    Ok(CertAndKey {
        cert_pem: read(&files.ca_cert)?,
        key_pem: bastion_tls::secret::read_secret_text(&files.ca_key)
            .map_err(|e| Failure::Runtime(e.to_string()))?,
    })
}

/// Creates `path` (refusing to replace a file) with `mode` and writes `text`.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))
}

fn write_pair(pair: &CertAndKey, cert: &Path, key: &Path) -> Result<String, Failure> {
    write(key, &pair.key_pem, 0o600)?;
    write(cert, &pair.cert_pem, 0o644)?;
    Ok(format!("wrote {} and {}\n", cert.display(), key.display()))
}

fn ca(a: &CertCaArgs) -> Result<String, Failure> {
    let sps: Vec<&str> = a.sp_fqdn.iter().map(String::as_str).collect();
    let pair = certs::create_constrained_ca(&a.cn, &sps, Validity::days(a.days)).map_err(failed)?;
    write_pair(&pair, &a.out_cert, &a.out_key)
}

fn issue(a: &CertIssueArgs) -> Result<String, Failure> {
    let ca = load_ca(&a.ca)?;
    let pair =
        certs::issue(&ca, &subject(&a.id, &a.dns)?, Validity::days(a.days)).map_err(failed)?;
    write_pair(&pair, &a.out_cert, &a.out_key)
}

fn csr(a: &CertCsrArgs) -> Result<String, Failure> {
    let request = certs::create_csr(&subject(&a.id, &a.dns)?).map_err(failed)?;
    write(&a.out_key, &request.key_pem, 0o600)?;
    write(&a.out_csr, &request.csr_pem, 0o644)?;
    Ok(format!(
        "wrote {} and {}\n",
        a.out_csr.display(),
        a.out_key.display()
    ))
}

fn sign(a: &CertSignArgs) -> Result<String, Failure> {
    let ca = load_ca(&a.ca)?;
    let cert =
        certs::sign_csr(&ca, &read(&a.csr)?, &a.dns, Validity::days(a.days)).map_err(failed)?;
    write(&a.out_cert, &cert, 0o644)?;
    Ok(format!("wrote {}\n", a.out_cert.display()))
}

fn crl(a: &CertCrlArgs) -> Result<String, Failure> {
    let ca = load_ca(&a.ca)?;
    let revoked = a
        .revoke
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&str> = revoked.iter().map(String::as_str).collect();
    let crl = certs::create_crl(&ca, &refs, a.number, a.next_update_days).map_err(failed)?;
    write(&a.out, &crl, 0o644)?;
    Ok(format!("wrote {}\n", a.out.display()))
}
