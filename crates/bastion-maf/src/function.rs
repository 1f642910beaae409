//! Which function serves the client and key registration procedures. TS-0003 defines them
//! once for the MAF (8.8.2.3–8.8.2.10) and again, with MEF names, for the MEF's symmetric
//! key provisioning (8.3.5.2.3–8.3.5.2.10); one implementation serves both, told apart
//! by a [`Function`]: the name in reasons and logs, the wire's root short names and
//! resource type, the SUIDs whose keys it registers, and the magic of its sealed records.

/// What distinguishes the MAF from the MEF in the shared procedures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// `MAF` or `MEF`, in refusal reasons and logs.
    pub name: &'static str,
    /// Root short name of a client registration (and its update).
    pub client_reg_root: &'static str,
    /// Root short name of a client configuration.
    pub client_cfg_root: &'static str,
    /// Root short name of a key registration.
    pub key_reg_root: &'static str,
    /// `ty` of a client registration CREATE.
    pub client_reg_ty: u64,
    /// The tens digit of the SUIDs whose keys it registers (TS-0004 m2m:suid): 3 for
    /// MAF-distributed keys (32–35), 2 for keys provisioned by an RSPF (22–25).
    pub suid_origin: u8,
    /// What those keys are called in refusals, with the article.
    pub key_origin: &'static str,
    /// Magic of its sealed record file.
    pub store_magic: &'static [u8; 8],
}

/// The M2M Authentication Function (8.8).
pub const MAF: Function = Function {
    name: "MAF",
    client_reg_root: "maf:mcr",
    client_cfg_root: "maf:mcc",
    key_reg_root: "maf:kr",
    client_reg_ty: 60_001,
    suid_origin: 3,
    key_origin: "a MAF-distributed",
    store_magic: b"BSTNMAF1",
};

/// The M2M Enrolment Function's symmetric key provisioning (8.3.5). SUID 21 (Km for a
/// MAF) is not registered here: the MEF releases Km through `fetchCredentials`.
pub const MEF: Function = Function {
    name: "MEF",
    client_reg_root: "mef:mcr",
    client_cfg_root: "mef:mcc",
    key_reg_root: "mef:kr",
    client_reg_ty: 60_003,
    suid_origin: 2,
    key_origin: "an RSPF-provisioned",
    store_magic: b"BSTNMEC1",
};

impl Default for Function {
    fn default() -> Self {
        MAF
    }
}

impl Function {
    /// The SUID codes whose keys this function registers, SAEF first.
    pub fn suids(&self) -> std::ops::RangeInclusive<u8> {
        let base = self.suid_origin * 10;
        base + 2..=base + 5
    }
}
