//! `[user@]host[:port]`: the syntax of `ssh.bastion` and of one ProxyJump hop. Pure, so the
//! profile checks a bastion without knowing the transport; the transport connects through it.

/// `[user@]host[:port]`, the form of `ssh.bastion` and of one ProxyJump hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

pub fn parse_jump(spec: &str) -> Result<JumpSpec, String> {
    let spec = spec.trim();
    if spec.contains(',') {
        return Err(format!(
            "{spec:?}: only one jump host is supported (a ProxyJump chain is not)"
        ));
    }
    let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{spec:?}: {p:?} is not a port"))?;
            (h.to_string(), Some(port))
        }
        _ => (rest.to_string(), None),
    };
    if host.is_empty() || user.as_deref() == Some("") {
        return Err(format!("{spec:?} is not [user@]host[:port]"));
    }
    Ok(JumpSpec { user, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_specs() {
        assert_eq!(
            parse_jump("ops@10.0.0.5:2200").unwrap(),
            JumpSpec {
                user: Some("ops".into()),
                host: "10.0.0.5".into(),
                port: Some(2200)
            }
        );
        assert_eq!(
            parse_jump("bastion").unwrap(),
            JumpSpec {
                user: None,
                host: "bastion".into(),
                port: None
            }
        );
        assert!(parse_jump("a,b").is_err());
        assert!(parse_jump("h:0").is_err());
        assert!(parse_jump("@h").is_err());
    }
}
