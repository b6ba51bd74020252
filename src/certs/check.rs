//! The certificate check `verify` runs on every node (`node.certs`) and `init` runs before reusing
//! a stored certificate: pure, over PEM bytes and a clock, so it is tested without a node.

use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

use super::RENEW_WITHIN_DAYS;

const DAY: i64 = 86_400;

/// Why a certificate is not good for (another) use against its CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("{what} is not a PEM X.509 certificate: {message}")]
    Unreadable { what: &'static str, message: String },
    #[error("the CA certificate ({subject}) is not a CA: no basicConstraints CA:TRUE")]
    NotCa { subject: String },
    #[error("the CA certificate ({subject}) expired on {not_after}")]
    CaExpired { subject: String, not_after: String },
    #[error("{subject} is not signed by the CA {ca} (issuer: {issuer})")]
    NotSignedByCa {
        subject: String,
        issuer: String,
        ca: String,
    },
    #[error("{subject} is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error("{subject} expired on {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("{subject} expires on {not_after}, in {days_left} day(s): within the {RENEW_WITHIN_DAYS}-day renewal window")]
    ExpiresSoon {
        subject: String,
        not_after: String,
        days_left: i64,
    },
}

/// Decode one PEM certificate; `what` names it in the problem ("the CA certificate").
pub(crate) fn parse_pem(what: &'static str, pem: &[u8]) -> Result<Pem, CertProblem> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| CertProblem::Unreadable {
        what,
        message: e.to_string(),
    })?;
    if pem.label != "CERTIFICATE" {
        return Err(CertProblem::Unreadable {
            what,
            message: format!("found a {:?} PEM block", pem.label),
        });
    }
    Ok(pem)
}

pub(crate) fn parse_x509<'a>(
    what: &'static str,
    pem: &'a Pem,
) -> Result<X509Certificate<'a>, CertProblem> {
    pem.parse_x509().map_err(|e| CertProblem::Unreadable {
        what,
        message: e.to_string(),
    })
}

fn unix(now: SystemTime) -> i64 {
    match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `cert_pem` is signed by `ca_pem`, valid at `now`, and stays valid for more than
/// `RENEW_WITHIN_DAYS` days (the window in which `init` renews it). The CA must be a CA and
/// unexpired. What `openssl verify -CAfile ca cert` checks, plus the renewal window.
pub fn check(ca_pem: &[u8], cert_pem: &[u8], now: SystemTime) -> Result<(), CertProblem> {
    let ca_block = parse_pem("the CA certificate", ca_pem)?;
    let ca = parse_x509("the CA certificate", &ca_block)?;
    let cert_block = parse_pem("the certificate", cert_pem)?;
    let cert = parse_x509("the certificate", &cert_block)?;
    let now = unix(now);
    let ca_subject = ca.subject().to_string();
    let subject = cert.subject().to_string();
    if !ca.is_ca() {
        return Err(CertProblem::NotCa {
            subject: ca_subject,
        });
    }
    if ca.validity().not_after.timestamp() <= now {
        return Err(CertProblem::CaExpired {
            subject: ca_subject,
            not_after: ca.validity().not_after.to_string(),
        });
    }
    // The issuer name must match and the CA's key must verify the signature: a certificate from
    // another CA with the same name is not accepted.
    if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(CertProblem::NotSignedByCa {
            subject,
            issuer: cert.issuer().to_string(),
            ca: ca_subject,
        });
    }
    let v = cert.validity();
    if v.not_before.timestamp() > now {
        return Err(CertProblem::NotYetValid {
            subject,
            not_before: v.not_before.to_string(),
        });
    }
    let not_after = v.not_after.timestamp();
    if not_after <= now {
        return Err(CertProblem::Expired {
            subject,
            not_after: v.not_after.to_string(),
        });
    }
    if not_after - now <= RENEW_WITHIN_DAYS * DAY {
        return Err(CertProblem::ExpiresSoon {
            subject,
            not_after: v.not_after.to_string(),
            days_left: (not_after - now) / DAY,
        });
    }
    Ok(())
}

/// The CA on its own: a CA, unexpired, and not inside the renewal window (certificates it signs
/// could not outlive it).
pub fn check_ca(ca_pem: &[u8], now: SystemTime) -> Result<(), CertProblem> {
    let block = parse_pem("the CA certificate", ca_pem)?;
    let ca = parse_x509("the CA certificate", &block)?;
    let subject = ca.subject().to_string();
    if !ca.is_ca() {
        return Err(CertProblem::NotCa { subject });
    }
    let now = unix(now);
    let not_after = ca.validity().not_after.timestamp();
    if not_after <= now {
        return Err(CertProblem::CaExpired {
            subject,
            not_after: ca.validity().not_after.to_string(),
        });
    }
    if not_after - now <= RENEW_WITHIN_DAYS * DAY {
        return Err(CertProblem::ExpiresSoon {
            subject,
            not_after: ca.validity().not_after.to_string(),
            days_left: (not_after - now) / DAY,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::certs::issue;

    fn ca(now: SystemTime) -> (String, String) {
        issue::ca("test", now, 3650).unwrap()
    }

    #[test]
    fn a_fresh_certificate_passes_and_ages_into_the_window() {
        let now = SystemTime::now();
        let (ca_pem, ca_key) = ca(now);
        let n = issue::node(&ca_pem, &ca_key, "worker-0", now, 365).unwrap();
        assert_eq!(check(ca_pem.as_bytes(), n.cert_pem.as_bytes(), now), Ok(()));
        let later = now + Duration::from_secs(340 * 86_400);
        match check(ca_pem.as_bytes(), n.cert_pem.as_bytes(), later) {
            Err(CertProblem::ExpiresSoon { days_left, .. }) => assert_eq!(days_left, 25),
            other => panic!("{other:?}"),
        }
        let after = now + Duration::from_secs(366 * 86_400);
        assert!(matches!(
            check(ca_pem.as_bytes(), n.cert_pem.as_bytes(), after),
            Err(CertProblem::Expired { .. })
        ));
        let before = now - Duration::from_secs(2 * 3600);
        assert!(matches!(
            check(ca_pem.as_bytes(), n.cert_pem.as_bytes(), before),
            Err(CertProblem::NotYetValid { .. })
        ));
    }

    #[test]
    fn another_ca_with_the_same_name_is_refused() {
        let now = SystemTime::now();
        let (ca_pem, ca_key) = ca(now);
        let (other_pem, _) = ca(now);
        let n = issue::node(&ca_pem, &ca_key, "worker-0", now, 365).unwrap();
        let e = check(other_pem.as_bytes(), n.cert_pem.as_bytes(), now).unwrap_err();
        assert!(matches!(e, CertProblem::NotSignedByCa { .. }), "{e}");
    }

    #[test]
    fn a_leaf_is_not_a_ca_and_garbage_is_unreadable() {
        let now = SystemTime::now();
        let (ca_pem, ca_key) = ca(now);
        let n = issue::node(&ca_pem, &ca_key, "worker-0", now, 365).unwrap();
        assert!(matches!(
            check(n.cert_pem.as_bytes(), n.cert_pem.as_bytes(), now),
            Err(CertProblem::NotCa { .. })
        ));
        let e = check(ca_pem.as_bytes(), b"hello", now).unwrap_err();
        assert!(e.to_string().starts_with("the certificate is not"), "{e}");
        let e = check(ca_pem.as_bytes(), n.key_pem.as_bytes(), now).unwrap_err();
        assert!(e.to_string().contains("PRIVATE KEY"), "{e}");
    }

    #[test]
    fn an_expired_ca_fails_its_certificates() {
        let now = SystemTime::now();
        let (ca_pem, ca_key) = ca(now);
        let n = issue::node(&ca_pem, &ca_key, "worker-0", now, 365).unwrap();
        let far = now + Duration::from_secs(3651 * 86_400);
        assert!(matches!(
            check(ca_pem.as_bytes(), n.cert_pem.as_bytes(), far),
            Err(CertProblem::CaExpired { .. })
        ));
    }
}
