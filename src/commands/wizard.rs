//! `netctl profile new`: a profile from answers. Every question is also a flag; on a terminal the
//! questions the flags left open are asked (each answer checked as typed, and asked again with the
//! reason when wrong); without one, every missing answer is listed at once (exit 2). The result is
//! commented YAML that `profile::load_str` accepts before it is written.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;

use crate::error::Error;
use crate::profile::validate::{is_dns_label, is_safe_path};
use crate::profile::{KubeVersion, ProviderKind};

/// The hard-way guides' networks.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.200.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.32.0.0/24";
pub const DEFAULT_SSH_USER: &str = "root";
pub const DEFAULT_IDENTITY: &str = "~/.ssh/id_ed25519";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswer {
    pub name: String,
    pub address: Ipv4Addr,
    /// `controller` and/or `worker`.
    pub roles: Vec<String>,
}

/// What the flags answered; `None` is a question still open.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub name: Option<String>,
    pub version: Option<String>,
    pub cluster_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub provider: Option<String>,
    pub backend: Option<String>,
    /// `--node` values, then `--hosts` lines.
    pub nodes: Vec<NodeAnswer>,
    pub ssh_user: Option<String>,
    pub identity_file: Option<String>,
    pub out: Option<PathBuf>,
    /// What was wrong with `--node` values and `--hosts` lines, listed with every other bad value.
    pub bad: Vec<String>,
}

// ---- checks, shared by flags and typed answers ----

pub fn check_name(s: &str) -> Result<(), String> {
    if is_dns_label(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)"
        ))
    }
}

pub fn check_version(s: &str) -> Result<(), String> {
    KubeVersion::parse(s)
        .map(|_| ())
        .ok_or_else(|| format!("{s:?} is not a Kubernetes version such as 1.30"))
}

pub fn check_cidr(s: &str) -> Result<Ipv4Network, String> {
    match s.parse::<Ipv4Network>() {
        Ok(n) if s.contains('/') && n.network() == n.ip() => Ok(n),
        Ok(n) if s.contains('/') => Err(format!(
            "{s} has host bits set; the network is {}/{}",
            n.network(),
            n.prefix()
        )),
        _ => Err(format!("{s:?} is not an IPv4 CIDR such as 10.200.0.0/16")),
    }
}

fn check_service_cidr(s: &str, cluster: Ipv4Network) -> Result<(), String> {
    let n = check_cidr(s)?;
    if n.contains(cluster.network()) || cluster.contains(n.network()) {
        return Err(format!(
            "{n} overlaps the cluster CIDR {cluster}: pod and service addresses would collide"
        ));
    }
    Ok(())
}

pub fn check_provider(s: &str) -> Result<ProviderKind, String> {
    ProviderKind::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a provider: {}",
            ProviderKind::ALL.map(|p| p.as_str()).join(", ")
        )
    })
}

/// The backends the wizard offers per provider, the default first.
pub fn backends(p: ProviderKind) -> &'static [&'static str] {
    crate::provider::wizard_backends(p)
}

fn check_backend(p: ProviderKind, s: &str) -> Result<(), String> {
    let ok = backends(p);
    if ok.contains(&s) {
        Ok(())
    } else if ok.is_empty() {
        Err(format!("the {p} provider has no backend to choose"))
    } else {
        Err(format!("{s:?} is not a {p} backend: {}", ok.join(", ")))
    }
}

fn check_roles(s: &str) -> Result<Vec<String>, String> {
    let roles: Vec<String> = s
        .split([',', '+', ' '])
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if roles.is_empty() {
        return Err("a node needs a role: worker, controller, or controller,worker".into());
    }
    for r in &roles {
        if r != "worker" && r != "controller" {
            return Err(format!("{r:?} is not a role: worker or controller"));
        }
    }
    Ok(roles)
}

fn check_address(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

fn check_ssh_user(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a user name"))
    }
}

fn check_path(s: &str) -> Result<(), String> {
    if is_safe_path(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} has characters outside a-z A-Z 0-9 / . _ - ~ + @, or a '..' component"
        ))
    }
}

/// A node against the networks and the nodes before it.
fn check_node(n: &NodeAnswer, earlier: &[NodeAnswer], nets: &[Ipv4Network]) -> Result<(), String> {
    check_name(&n.name)?;
    if earlier.iter().any(|e| e.name == n.name) {
        return Err(format!("a node is already named {}", n.name));
    }
    if earlier.iter().any(|e| e.address == n.address) {
        return Err(format!("{} is already another node's address", n.address));
    }
    if let Some(net) = nets.iter().find(|net| net.contains(n.address)) {
        return Err(format!(
            "{} lies inside {net}: node addresses must be outside the pod and service networks",
            n.address
        ));
    }
    Ok(())
}

// ---- flags ----

/// `name=worker-0,address=10.240.0.20,roles=controller,worker` (a token without `=` continues the
/// previous value, so roles may be comma-separated too).
pub fn parse_node_flag(s: &str) -> Result<NodeAnswer, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for tok in s.split(',') {
        match tok.split_once('=') {
            Some((k, v)) => fields.push((k.trim().to_string(), v.trim().to_string())),
            None => match fields.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(tok.trim());
                }
                None => return Err(format!("--node {s:?}: expected key=value")),
            },
        }
    }
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    if let Some((k, _)) = fields
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "name" | "address" | "roles"))
    {
        return Err(format!(
            "--node {s:?}: unknown key {k:?} (name, address, roles)"
        ));
    }
    let name = get("name").ok_or_else(|| format!("--node {s:?}: name= is missing"))?;
    let address = get("address").ok_or_else(|| format!("--node {s:?}: address= is missing"))?;
    let bad = |e: String| format!("--node {s:?}: {e}");
    check_name(name).map_err(bad)?;
    Ok(NodeAnswer {
        name: name.to_string(),
        address: check_address(address).map_err(bad)?,
        roles: check_roles(get("roles").unwrap_or("worker")).map_err(bad)?,
    })
}

/// A hosts file: `name address [roles]` per line (roles comma-separated, default worker); blank
/// lines and `#` comments are skipped. The nodes, and a problem per bad line, naming the line.
pub fn parse_hosts(text: &str, path: &Path) -> (Vec<NodeAnswer>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let node = if (2..=3).contains(&parts.len()) {
            check_name(parts[0]).and_then(|()| {
                Ok(NodeAnswer {
                    name: parts[0].to_string(),
                    address: check_address(parts[1])?,
                    roles: check_roles(parts.get(2).copied().unwrap_or("worker"))?,
                })
            })
        } else {
            Err(format!("expected `name address [roles]`, found {line:?}"))
        };
        match node {
            Ok(n) => out.push(n),
            Err(e) => bad.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    (out, bad)
}

// ---- asking ----

/// Ask on the terminal, re-asking with the reason until `check` accepts the answer. An empty
/// line takes `default` (`Some("")`: the answer may be empty). Ctrl-C and Ctrl-D (on an empty
/// line, as in a shell) end the interview: nothing has been written then.
fn ask(
    prompt: &str,
    default: Option<&str>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String, Error> {
    use dialoguer::console::Term;
    let term = Term::stderr();
    let io = |e: std::io::Error| Error::Usage(format!("{prompt}: the terminal failed: {e}"));
    loop {
        let shown = match default {
            Some(d) if !d.is_empty() => format!("{prompt} [{d}]: "),
            _ => format!("{prompt}: "),
        };
        term.write_str(&shown).map_err(io)?;
        let line = match read_line(&term).map_err(io)? {
            Line::Text(t) => t,
            Line::Interrupted => {
                return Err(Error::Interrupted(
                    "interrupted (Ctrl-C); no profile was written".into(),
                ))
            }
            Line::Eof => {
                return Err(Error::Failed(format!(
                    "{prompt}: no answer (Ctrl-D); no profile was written"
                )))
            }
        };
        let answer = match (line.trim(), default) {
            ("", Some(d)) => d.to_string(),
            (t, _) => t.to_string(),
        };
        match check(&answer) {
            Ok(()) => return Ok(answer),
            Err(reason) => term.write_line(&format!("  {reason}")).map_err(io)?,
        }
    }
}

enum Line {
    Text(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D on an empty line, or the terminal closed.
    Eof,
}

/// One line typed at the terminal, echoed as it is typed (dialoguer's prompt ignores Ctrl-D).
fn read_line(term: &dialoguer::console::Term) -> std::io::Result<Line> {
    use dialoguer::console::Key;
    let mut line = String::new();
    loop {
        match term.read_key_raw() {
            Ok(Key::Enter) => {
                term.write_line("")?;
                return Ok(Line::Text(line));
            }
            Ok(Key::CtrlC) => {
                term.write_line("")?;
                return Ok(Line::Interrupted);
            }
            Ok(Key::Char('\u{4}')) if line.is_empty() => {
                term.write_line("")?;
                return Ok(Line::Eof);
            }
            Ok(Key::Backspace) => {
                if line.pop().is_some() {
                    term.write_str("\x08 \x08")?;
                }
            }
            Ok(Key::Char(c)) if !c.is_control() => {
                line.push(c);
                term.write_str(c.encode_utf8(&mut [0; 4]))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Line::Eof),
            Err(e) => return Err(e),
        }
    }
}

/// Where the profile goes: refused when it exists, unless `force`.
fn check_out(out: &Path, force: bool) -> Result<(), String> {
    if out.exists() && !force {
        Err(format!(
            "{} exists: give another path, or pass --force to overwrite it",
            out.display()
        ))
    } else {
        Ok(())
    }
}

/// Fill every open question, from the terminal when there is one. Flags are checked as typed
/// answers are, all of them before anything is asked or refused: every bad value and (without a
/// terminal) every missing answer is listed at once (exit 2).
pub fn complete(mut a: Answers, interactive: bool, force: bool) -> Result<Complete, Error> {
    let mut bad: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    let mut flag = |name: &str, r: Result<(), String>| match r {
        Ok(()) => true,
        Err(e) => {
            bad.push(format!("{name}: {e}"));
            false
        }
    };

    let name = a.name.take().filter(|n| flag("--name", check_name(n)));
    let version = a
        .version
        .take()
        .filter(|v| flag("--kubernetes-version", check_version(v)));
    let cluster_flag = a
        .cluster_cidr
        .take()
        .filter(|c| flag("--cluster-cidr", check_cidr(c).map(|_| ())));
    let cluster_net = cluster_flag
        .as_deref()
        .map(|c| check_cidr(c).expect("checked"));
    let service_flag = a.service_cidr.take().filter(|c| {
        flag(
            "--service-cidr",
            match cluster_net {
                Some(cl) => check_service_cidr(c, cl),
                None => check_cidr(c).map(|_| ()),
            },
        )
    });
    let provider = a.provider.take().and_then(|p| match check_provider(&p) {
        Ok(k) => Some(k),
        Err(e) => {
            flag("--provider", Err(e));
            None
        }
    });
    let backend_flag = a.backend.take();
    if let (Some(p), Some(b)) = (provider, &backend_flag) {
        flag("--backend", check_backend(p, b));
    }
    let mut nodes = a.nodes;
    for (i, n) in nodes.iter().enumerate() {
        let nets: Vec<Ipv4Network> = [
            cluster_net,
            service_flag.as_deref().and_then(|s| check_cidr(s).ok()),
        ]
        .into_iter()
        .flatten()
        .collect();
        flag("--node/--hosts", check_node(n, &nodes[..i], &nets));
    }
    let ssh_user = a
        .ssh_user
        .take()
        .filter(|u| flag("--ssh-user", check_ssh_user(u)));
    let identity_file = a
        .identity_file
        .take()
        .filter(|i| flag("--identity-file", check_path(i)));
    let out_flag = a.out.take().filter(|o| flag("--out", check_out(o, force)));
    bad.extend(a.bad);
    if !bad.is_empty() {
        return Err(Error::Usage(format!(
            "{} bad value(s):\n{}",
            bad.len(),
            bad.iter()
                .map(|b| format!("  {b}"))
                .collect::<Vec<_>>()
                .join("\n")
        )));
    }

    let name = match name {
        Some(n) => Some(n),
        None if interactive => Some(ask("Cluster name", None, check_name)?),
        None => {
            missing.push("--name NAME (the cluster's name, a DNS label)");
            None
        }
    };
    // Asked second, and checked as it is asked: an existing file is refused before the rest of
    // the interview, not after it.
    let out = match (out_flag, &name) {
        (Some(o), _) => Some(o),
        (None, Some(name)) if interactive => Some(PathBuf::from(ask(
            "Write the profile to",
            Some(&format!("{name}.yaml")),
            |s| check_out(Path::new(s), force),
        )?)),
        (None, Some(name)) => {
            let o = PathBuf::from(format!("{name}.yaml"));
            check_out(&o, force).map_err(|e| Error::Usage(format!("--out: {e}")))?;
            Some(o)
        }
        (None, None) => None,
    };
    let version = match version {
        Some(v) => Some(v),
        None if interactive => Some(ask("Kubernetes version", Some("1.30"), check_version)?),
        None => {
            missing.push("--kubernetes-version VERSION (e.g. 1.30)");
            None
        }
    };
    let cluster_cidr = match cluster_flag {
        Some(c) => c,
        None if interactive => ask("Cluster (pod) CIDR", Some(DEFAULT_CLUSTER_CIDR), |s| {
            check_cidr(s).map(|_| ())
        })?,
        None => DEFAULT_CLUSTER_CIDR.to_string(),
    };
    let cluster_net =
        check_cidr(&cluster_cidr).map_err(|e| Error::Usage(format!("--cluster-cidr: {e}")))?;
    let service_cidr = match service_flag {
        Some(c) => c,
        None if interactive => ask("Service CIDR", Some(DEFAULT_SERVICE_CIDR), move |s| {
            check_service_cidr(s, cluster_net)
        })?,
        None => DEFAULT_SERVICE_CIDR.to_string(),
    };
    check_service_cidr(&service_cidr, cluster_net)
        .map_err(|e| Error::Usage(format!("--service-cidr: {e}")))?;
    let service_net = check_cidr(&service_cidr).expect("checked");

    let provider = match provider {
        Some(p) => Some(p),
        None if interactive => {
            let p = ask(
                &format!(
                    "Provider ({})",
                    ProviderKind::ALL.map(|p| p.as_str()).join(", ")
                ),
                Some("flannel"),
                |s| check_provider(s).map(|_| ()),
            )?;
            Some(check_provider(&p).map_err(Error::Usage)?)
        }
        None => {
            missing.push("--provider PROVIDER (routes, kubenet, flannel, calico, canal, weave)");
            None
        }
    };
    let backend = match (provider, backend_flag) {
        (Some(_), Some(b)) => Some(b),
        (Some(p), None) => match backends(p) {
            [] => None,
            choices if interactive => Some(ask(
                &format!("{p} backend ({})", choices.join(", ")),
                Some(choices[0]),
                move |s| check_backend(p, s),
            )?),
            choices => Some(choices[0].to_string()),
        },
        (None, b) => b,
    };

    let nets = [cluster_net, service_net];
    for (i, n) in nodes.iter().enumerate() {
        check_node(n, &nodes[..i], &nets)
            .map_err(|e| Error::Usage(format!("--node/--hosts: {e}")))?;
    }
    if nodes.is_empty() {
        if interactive {
            nodes = ask_nodes(&nets)?;
        } else {
            missing.push("--node name=N,address=A[,roles=R] (repeatable) or --hosts FILE");
        }
    }

    let ssh_user = match ssh_user {
        Some(u) => u,
        None if interactive => ask("SSH user", Some(DEFAULT_SSH_USER), check_ssh_user)?,
        None => DEFAULT_SSH_USER.to_string(),
    };
    let identity_file = match identity_file {
        Some(i) => i,
        None if interactive => ask("SSH private key", Some(DEFAULT_IDENTITY), check_path)?,
        None => DEFAULT_IDENTITY.to_string(),
    };

    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "there is no terminal to ask, and {} answer(s) are missing:\n{}",
            missing.len(),
            missing
                .iter()
                .map(|m| format!("  {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )));
    }
    Ok(Complete {
        name: name.expect("asked or listed as missing"),
        version: version.expect("asked or listed as missing"),
        cluster_cidr,
        service_cidr,
        provider: provider.expect("asked or listed as missing"),
        backend,
        nodes,
        ssh_user,
        identity_file,
        out: out.expect("with the name"),
    })
}

fn ask_nodes(nets: &[Ipv4Network; 2]) -> Result<Vec<NodeAnswer>, Error> {
    let mut nodes: Vec<NodeAnswer> = Vec::new();
    loop {
        let taken: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let first = nodes.is_empty();
        let name = ask(
            if first {
                "Node name"
            } else {
                "Node name (empty when done)"
            },
            if first { None } else { Some("") },
            move |s| {
                if s.is_empty() && !first {
                    return Ok(());
                }
                check_name(s)?;
                if taken.iter().any(|t| t == s) {
                    return Err(format!("a node is already named {s}"));
                }
                Ok(())
            },
        )?;
        if name.is_empty() {
            return Ok(nodes);
        }
        let earlier = nodes.clone();
        let nets2 = *nets;
        let address = ask(&format!("{name} address"), None, move |s| {
            let n = NodeAnswer {
                name: "x".into(),
                address: check_address(s)?,
                roles: vec![],
            };
            let others: Vec<NodeAnswer> = earlier
                .iter()
                .map(|e| NodeAnswer {
                    name: format!("other-{}", e.name),
                    ..e.clone()
                })
                .collect();
            check_node(&n, &others, &nets2)
        })?;
        let roles = ask(
            &format!("{name} roles (worker, controller, or controller,worker)"),
            Some("worker"),
            |s| check_roles(s).map(|_| ()),
        )?;
        nodes.push(NodeAnswer {
            name,
            address: check_address(&address).map_err(Error::Usage)?,
            roles: check_roles(&roles).map_err(Error::Usage)?,
        });
    }
}

/// Every answer, checked.
#[derive(Debug, Clone)]
pub struct Complete {
    pub name: String,
    pub version: String,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub provider: ProviderKind,
    pub backend: Option<String>,
    pub nodes: Vec<NodeAnswer>,
    pub ssh_user: String,
    pub identity_file: String,
    pub out: PathBuf,
}

/// The profile text: every section with a comment saying what it is for.
pub fn render(c: &Complete) -> String {
    let (runtime, section) = crate::provider::wizard_profile(c.provider, c.backend.as_deref());
    let mut s = format!(
        "# Cluster profile written by `netctl profile new`.\n\
         # Check it with `netctl profile check -p {out}`; docs/profile.md describes every field.\n\
         apiVersion: netctl/v1\n\
         kind: ClusterProfile\n\
         name: {name}\n\
         \n\
         # The cluster's networks. clusterCIDR is the pod network: each worker gets a /24 podCIDR\n\
         # from it, in the order of the nodes below. serviceCIDR holds service cluster IPs (the\n\
         # cluster DNS is its 10th address). The two must not overlap, nor hold a node address.\n\
         kubernetes:\n  \
           version: \"{version}\"\n  \
           clusterCIDR: {cluster}\n  \
           serviceCIDR: {service}\n{runtime}  \
           # apiServer: https://10.240.0.10:6443  # default: the first controller, port 6443\n  \
           # kubeconfig: ~/.kube/config           # for kubectl steps; without it they are skipped\n\
         \n\
         # Pod networking: which provider, and how it carries traffic between nodes.\n\
         networking:\n  \
           provider: {provider}\n",
        out = c.out.display(),
        name = c.name,
        version = c.version,
        cluster = c.cluster_cidr,
        service = c.service_cidr,
        provider = c.provider,
    );
    s.push_str(&section);
    s.push_str(&format!(
        "\n\
         # How netctl reaches the nodes. Host keys are checked against ~/.ssh/known_hosts; an unknown\n\
         # key is refused unless you pass --accept-new-host-keys.\n\
         ssh:\n  \
           user: {user}\n  \
           identityFile: {identity}\n\
         \n\
         # The nodes: a name (a DNS label), the IPv4 address netctl connects to and routes pods\n\
         # through, and roles (workers carry pods; controllers run kube-controller-manager).\n\
         nodes:\n",
        user = c.ssh_user,
        identity = c.identity_file,
    ));
    for n in &c.nodes {
        s.push_str(&format!(
            "  - {{ name: {}, address: {}, roles: [{}] }}\n",
            n.name,
            n.address,
            n.roles.join(", ")
        ));
    }
    s
}

/// Complete the answers, render, check the text with the real loader, and write it (never over an
/// existing file without `force`). Returns the line to print; warns (stderr) about an SSH
/// identity file that is not there.
pub fn run(answers: Answers, interactive: bool, force: bool) -> Result<String, Error> {
    let c = complete(answers, interactive, force)?;
    let text = render(&c);
    let cluster = crate::profile::load_str(&text, &c.out)?;
    write(&c.out, &text, force)?;
    if let Some(w) = identity_warning(&c.identity_file) {
        eprintln!("warning: {w}");
    }
    Ok(format!(
        "wrote {} ({} node(s), {} provider); check it with `netctl profile check -p {}`",
        c.out.display(),
        cluster.nodes.len(),
        cluster.provider(),
        c.out.display()
    ))
}

/// The profile names a key netctl will try first: say so now when it is not there, not at the
/// first connection.
fn identity_warning(identity_file: &str) -> Option<String> {
    let path = crate::profile::expand_home(identity_file);
    (!path.exists()).then(|| {
        format!(
            "the SSH identity file {identity_file} ({}) does not exist: create it (ssh-keygen -t ed25519 -f {}) or change ssh.identityFile",
            path.display(),
            path.display()
        )
    })
}

fn write(out: &Path, text: &str, force: bool) -> Result<(), Error> {
    use std::io::Write;
    let io = |source| crate::render::WriteError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .create_new(!force)
        .truncate(true)
        .open(out)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_flags_and_hosts_files() {
        let n = parse_node_flag("name=ctl-0,address=10.240.0.10,roles=controller,worker").unwrap();
        assert_eq!(n.roles, ["controller", "worker"]);
        assert_eq!(
            parse_node_flag("address=10.240.0.20,name=w").unwrap().roles,
            ["worker"]
        );
        assert!(parse_node_flag("name=w").unwrap_err().contains("address="));
        assert!(parse_node_flag("name=W,address=1.2.3.4")
            .unwrap_err()
            .contains("DNS-1123"));
        assert!(parse_node_flag("name=w,address=1.2.3.4,zone=a")
            .unwrap_err()
            .contains("unknown key"));
        let (hosts, bad) = parse_hosts(
            "# lab\nctl 10.0.0.10 controller\n\nwrk1 10.0.0.11   # a worker\nboth 10.0.0.12 controller,worker\n",
            Path::new("hosts"),
        );
        assert_eq!((hosts.len(), bad.len()), (3, 0));
        assert_eq!(hosts[1].roles, ["worker"]);
        // Every bad line, each named.
        let (hosts, bad) = parse_hosts("a 10.0.0.1\nb 10.0.0.x\nC 10.0.0.3\n", Path::new("hosts"));
        assert_eq!(hosts.len(), 1);
        assert!(
            bad[0].starts_with("hosts:2: ") && bad[1].starts_with("hosts:3: "),
            "{bad:?}"
        );
    }

    #[test]
    fn answers_are_checked_with_reasons() {
        assert!(check_cidr("10.200.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(check_cidr("10.200.0.0")
            .unwrap_err()
            .contains("not an IPv4 CIDR"));
        assert!(
            check_service_cidr("10.200.5.0/24", check_cidr("10.200.0.0/16").unwrap())
                .unwrap_err()
                .contains("overlaps")
        );
        assert!(check_backend(ProviderKind::Calico, "vxlan").is_err());
        assert!(check_backend(ProviderKind::Flannel, "host-gw").is_ok());
        let nets = [
            check_cidr("10.200.0.0/16").unwrap(),
            check_cidr("10.32.0.0/24").unwrap(),
        ];
        let n = NodeAnswer {
            name: "w".into(),
            address: "10.200.1.1".parse().unwrap(),
            roles: vec!["worker".into()],
        };
        assert!(check_node(&n, &[], &nets)
            .unwrap_err()
            .contains("inside 10.200.0.0/16"));
    }

    #[test]
    fn every_provider_renders_a_valid_profile() {
        for p in ProviderKind::ALL {
            let c = Complete {
                name: "demo".into(),
                version: if p == ProviderKind::Kubenet {
                    "1.23"
                } else {
                    "1.30"
                }
                .into(),
                cluster_cidr: DEFAULT_CLUSTER_CIDR.into(),
                service_cidr: DEFAULT_SERVICE_CIDR.into(),
                provider: p,
                backend: backends(p).first().map(|b| b.to_string()),
                nodes: vec![
                    parse_node_flag("name=ctl,address=10.240.0.10,roles=controller").unwrap(),
                    parse_node_flag("name=w0,address=10.240.0.20").unwrap(),
                ],
                ssh_user: "root".into(),
                identity_file: DEFAULT_IDENTITY.into(),
                out: "demo.yaml".into(),
            };
            let text = render(&c);
            let cluster = crate::profile::load_str(&text, Path::new("demo.yaml"))
                .unwrap_or_else(|e| panic!("{p}: {e}\n{text}"));
            assert_eq!(cluster.provider(), p);
            assert!(text.contains("# The nodes:"), "{text}");
        }
    }
}
