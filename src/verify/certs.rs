//! The one read `verify`'s `node.certs` check needs: the CA and flanneld's certificate as the
//! node has them (never the key), checked with `check`.

use std::time::SystemTime;

use crate::certs::{check, CertProblem};
use crate::provider::flannel;
use crate::remote::{Remote, RemoteError};

const MARK: &str = "--netctl-cert-separator--";

#[derive(Debug, thiserror::Error)]
pub enum NodeCertError {
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{path}: {problem}")]
    Problem {
        path: &'static str,
        problem: CertProblem,
    },
}

/// A read-only script printing the CA that signed the certificate (client-ca.crt when it is not
/// the cluster CA), a separator, then the certificate (an absent file prints nothing).
pub fn read_script() -> String {
    format!(
        "cat {client_ca} 2>/dev/null || cat {ca} 2>/dev/null; echo; echo {MARK}; cat {cert} 2>/dev/null; true\n",
        client_ca = flannel::CLIENT_CA,
        ca = flannel::CA,
        cert = flannel::CERT
    )
}

/// Split `read_script`'s output and check it: the node's certificate against the node's CA.
pub fn check_output(out: &str, now: SystemTime) -> Result<(), NodeCertError> {
    let (ca, cert) = out.split_once(MARK).unwrap_or((out, ""));
    if !ca.contains("-----BEGIN") {
        return Err(NodeCertError::Missing(flannel::CA));
    }
    if !cert.contains("-----BEGIN") {
        return Err(NodeCertError::Missing(flannel::CERT));
    }
    check(ca.trim().as_bytes(), cert.trim().as_bytes(), now).map_err(|problem| {
        NodeCertError::Problem {
            path: flannel::CERT,
            problem,
        }
    })
}

/// `node.certs` for one node: read over the node's session, then check.
pub async fn check_node(remote: &Remote, now: SystemTime) -> Result<(), NodeCertError> {
    let out = remote
        .read("read flanneld certificates", &read_script())
        .await
        .map_err(|e| NodeCertError::Remote(Box::new(e)))?;
    check_output(&out, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::issue;

    #[test]
    fn output_is_split_and_checked() {
        let now = SystemTime::now();
        let (ca, key) = issue::ca("t", now, 3650).unwrap();
        let n = issue::node(&ca, &key, "w", now, 365).unwrap();
        let out = format!("{ca}\n{MARK}\n{}", n.cert_pem);
        check_output(&out, now).unwrap();
        assert!(matches!(
            check_output(&format!("\n{MARK}\n{}", n.cert_pem), now),
            Err(NodeCertError::Missing(p)) if p == flannel::CA
        ));
        assert!(matches!(
            check_output(&format!("{ca}\n{MARK}\n"), now),
            Err(NodeCertError::Missing(p)) if p == flannel::CERT
        ));
        let (other, _) = issue::ca("t", now, 3650).unwrap();
        let e = check_output(&format!("{other}\n{MARK}\n{}", n.cert_pem), now).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/kube-flannel/flanneld.crt: "),
            "{e}"
        );
    }
}
