//! Registration shapes several test files need beyond [`Server::register_ae`]: an AE
//! with its own points of access.

use super::{Server, CSE_NAME};
use serde_json::json;

impl Server {
    /// Registers `aei` (`rr` true) with `poa` as its points of access; returns its path.
    pub async fn ae_with_poa(&self, aei: &str, poa: &[&str]) -> String {
        let r = self
            .create(
                &format!("/{CSE_NAME}"),
                aei,
                2,
                json!({"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"], "poa": poa}}),
            )
            .await;
        r.expect(2001);
        format!(
            "/{CSE_NAME}/{}",
            r.inner("m2m:ae")["rn"].as_str().expect("rn")
        )
    }
}
