//! Making certificates with rcgen: the cluster CA netctl generates, and flanneld's client
//! certificate per node. Also loading a CA key an operator brings (PKCS#8, or the PKCS#1
//! `RSA PRIVATE KEY` that cfssl writes for the hard-way guides' ca-key.pem).

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::check::{parse_pem, parse_x509};

/// flanneld's identity: one user per node (audit logs name the node), one group for the binding.
pub const FLANNELD_GROUP: &str = "netctl:flanneld";

pub fn flanneld_user(node: &str) -> String {
    format!("flanneld:{node}")
}

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    // Never print the key, not even in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert")
            .field("cert_pem", &self.cert_pem)
            .field(
                "key_pem",
                &format_args!("(secret, {} bytes)", self.key_pem.len()),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot read the private key: {0}")]
    Key(String),
    #[error("cannot read the CA certificate: {0}")]
    CaCert(String),
    #[error("the CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("cannot sign: {0}")]
    Sign(#[from] rcgen::Error),
}

fn at(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

fn serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system random");
    b[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&b)
}

/// A new CA for the cluster: ECDSA P-256, valid `days` days from an hour ago (clock skew).
pub fn ca(profile_name: &str, now: SystemTime, days: u32) -> Result<(String, String), IssueError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{profile_name} CA"));
    dn.push(DnType::OrganizationName, "netctl");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(now - Duration::from_secs(3600));
    p.not_after = at(now + Duration::from_secs(u64::from(days) * 86_400));
    p.serial_number = Some(serial());
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// flanneld's client certificate for `node`, signed by the CA, valid `days` days (never past the
/// CA's own expiry). A new key every time: a renewal is also a key rotation.
pub fn node(
    ca_pem: &str,
    ca_key_pem: &str,
    node: &str,
    now: SystemTime,
    days: u32,
) -> Result<NodeCert, IssueError> {
    let ca_key = load_key(ca_key_pem)?;
    let ca_block = parse_pem("the CA certificate", ca_pem.as_bytes())
        .map_err(|e| IssueError::CaCert(e.to_string()))?;
    let ca_x509 = parse_x509("the CA certificate", &ca_block)
        .map_err(|e| IssueError::CaCert(e.to_string()))?;
    if ca_x509.public_key().subject_public_key.data.as_ref() != ca_key.public_key_raw() {
        return Err(IssueError::KeyMismatch);
    }
    let ca_not_after = ca_x509.validity().not_after.timestamp();
    let issuer = Issuer::from_ca_cert_pem(ca_pem, &ca_key)?;

    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, flanneld_user(node));
    dn.push(DnType::OrganizationName, FLANNELD_GROUP);
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = at(now - Duration::from_secs(3600));
    let wanted = at(now + Duration::from_secs(u64::from(days) * 86_400));
    let ca_end = OffsetDateTime::from_unix_timestamp(ca_not_after).unwrap_or(wanted);
    p.not_after = wanted.min(ca_end);
    p.serial_number = Some(serial());
    let cert = p.signed_by(&key, &issuer)?;
    Ok(NodeCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether `key_pem` is the private key of `cert_pem`.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(key) = load_key(key_pem) else {
        return false;
    };
    let Ok(block) = parse_pem("the certificate", cert_pem.as_bytes()) else {
        return false;
    };
    let Ok(cert) = parse_x509("the certificate", &block) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// The certificate's subject common name and organisations.
pub fn subject(cert_pem: &str) -> Option<(String, Vec<String>)> {
    let block = parse_pem("the certificate", cert_pem.as_bytes()).ok()?;
    let cert = parse_x509("the certificate", &block).ok()?;
    let s = cert.subject();
    let cn = s.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = s
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

/// A private key from PEM: PKCS#8 (`PRIVATE KEY`) or PKCS#1 RSA (`RSA PRIVATE KEY`, wrapped into
/// PKCS#8 here because ring reads only PKCS#8).
pub fn load_key(pem_text: &str) -> Result<KeyPair, IssueError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| IssueError::Key(format!("not PEM: {e}")))?;
    let der = match block.label.as_str() {
        "PRIVATE KEY" => block.contents,
        "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&block.contents),
        "EC PRIVATE KEY" => {
            return Err(IssueError::Key(
                "an EC PRIVATE KEY (SEC1) is not read: convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY`".into(),
            ))
        }
        "ENCRYPTED PRIVATE KEY" => {
            return Err(IssueError::Key(
                "the key is encrypted: netctl needs it unencrypted (mode 0600)".into(),
            ))
        }
        other => return Err(IssueError::Key(format!("found a {other:?} PEM block, not a private key"))),
    };
    KeyPair::try_from(der).map_err(|e| IssueError::Key(e.to_string()))
}

/// PrivateKeyInfo { version 0, AlgorithmIdentifier { rsaEncryption, NULL }, OCTET STRING pkcs1 }.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }
    // 1.2.840.113549.1.1.1 rsaEncryption, with its NULL parameters.
    const RSA_ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALG);
    body.extend(tlv(0x04, pkcs1));
    tlv(0x30, &body)
}
