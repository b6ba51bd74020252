//! The lab commands as ordered steps: up (check, claim, build, wait, record), down (undo exactly
//! what the state records), restart, status and exec. A failed `up` tears down what it made.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;

use super::runtime::{self, Runtime};
use super::state::{NodeState, State};
use super::{bastion_address, bastion_inner_address};
use super::{bridge, keys, netns, nspawn, preflight, probe, profile, rootfs, sandbox_image, user};
use super::{gateway, lab_dir, labs_root, node_address, validate_name, Kind, LabError, LabInfo};

/// The optional parts of a lab: a bastion in front of the nodes, a sudo user instead of root.
pub struct Extras {
    pub bastion: bool,
    /// (login, sudo password)
    pub user: Option<(String, String)>,
    /// A container runtime on every node (netns nodes only).
    pub runtime: Option<Runtime>,
}

/// Every netns node is a neighbour of the host (the lab bridge) and has the bridge as its own: two
/// entries per node in the kernel's neighbour table, which all namespaces share (gc_thresh3 is
/// 1024 by default). 400 nodes take 800, leaving room for pods and other labs on the machine.
/// (Link names, `nl-NAME-400`, would allow up to 999.)
const MAX_NETNS: usize = 400;
const MAX_SYSTEMD: usize = 50;

fn ssh_timeout(kind: Kind, nodes: usize) -> Duration {
    match kind {
        Kind::Netns => Duration::from_secs(30 + nodes as u64 / 2),
        // Booting systemd is CPU-bound: about 1.5 s of a core per node.
        Kind::Systemd => Duration::from_secs(90 + 6 * nodes as u64),
    }
}

pub fn up(
    name: &str,
    n: usize,
    kind: Kind,
    subnet: Ipv4Network,
    extras: &Extras,
) -> Result<i32, LabError> {
    let started = Instant::now();
    validate_name(name)?;
    preflight::require_root()?;
    preflight::require_packages(kind)?;
    if let Some((login, password)) = &extras.user {
        preflight::require_user_tools()?;
        user::validate(login, password)?;
    }
    if let Some(rt) = extras.runtime {
        if kind != Kind::Netns {
            // A systemd node's root has no containerd, and runc would need the container's cgroups.
            return Err(LabError::BadInput(format!(
                "--runtime {}: only netns nodes run a container runtime (use --kind netns)",
                rt.as_str()
            )));
        }
        preflight::require_runtime()?;
    }
    check_labs_root()?;
    let max = match kind {
        Kind::Netns => MAX_NETNS,
        Kind::Systemd => MAX_SYSTEMD,
    };
    if n == 0 || n > max {
        return Err(LabError::BadInput(format!(
            "--nodes {n}: a {} lab has 1 to {max} nodes",
            kind.as_str()
        )));
    }
    let subnet = Ipv4Network::new(subnet.network(), subnet.prefix()).expect("same prefix");
    // Hosts .1 (gateway) and .11 .. .(10+n), and the broadcast address above them.
    if u64::from(subnet.size()) < (n as u64) + 12 {
        return Err(LabError::BadInput(format!(
            "--subnet {subnet} is too small for {n} nodes (node-{n} would be host {}); give a \
             shorter prefix, or leave --subnet out for {}",
            10 + n,
            super::default_subnet(n)
        )));
    }
    for (field, cidr) in [
        ("clusterCIDR", profile::CLUSTER_CIDR),
        ("serviceCIDR", profile::SERVICE_CIDR),
    ] {
        let net: Ipv4Network = cidr.parse().expect("constant CIDR");
        if bridge::overlaps(net, subnet) {
            return Err(LabError::BadInput(format!(
                "--subnet {subnet} overlaps the lab profile's {field} {cidr}"
            )));
        }
    }
    let dir = lab_dir(name);
    if dir.exists() {
        return Err(LabError::BadInput(format!(
            "a lab named {name:?} exists ({}); run `netctl lab down --name {name}` first",
            dir.display()
        )));
    }
    for other in other_labs(name) {
        if let Ok(s) = State::load(&other) {
            if bridge::overlaps(s.subnet, subnet) {
                return Err(LabError::BadInput(format!(
                    "--subnet {subnet} is used by lab {other:?} ({}); choose a free one with --subnet",
                    s.subnet
                )));
            }
        }
    }
    let br = format!("nl-{name}-br");
    if bridge::exists(&br) {
        return Err(LabError::BadInput(format!(
            "a link named {br} exists already"
        )));
    }
    if let Some(what) = bridge::subnet_conflict(subnet)? {
        return Err(LabError::BadInput(format!(
            "--subnet {subnet} overlaps {what} on this machine; choose a free one with --subnet"
        )));
    }
    let lower = match kind {
        Kind::Systemd => Some(rootfs::ensure()?),
        Kind::Netns => None,
    };

    // Claim the name atomically: of two `lab up --name X`, one gets the directory.
    let root = labs_root();
    std::fs::create_dir_all(&root).map_err(|e| LabError::io("cannot create", &root, e))?;
    std::fs::create_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            LabError::BadInput(format!("a lab named {name:?} exists ({})", dir.display()))
        } else {
            LabError::io("cannot create", &dir, e)
        }
    })?;
    set_mode(&dir, 0o700)?;
    let mut state = State {
        name: name.to_string(),
        kind,
        subnet,
        gateway: gateway(subnet),
        inner_bridge: extras.bastion.then(|| format!("nl-{name}-in")),
        bastion: extras.bastion.then(|| NodeState {
            name: "bastion".into(),
            address: bastion_address(subnet),
            netns: Some(format!("{name}-bastion")),
            veth: Some(format!("nl-{name}-b0")),
            veth2: Some(format!("nl-{name}-b1")),
            machine: None,
            overlay_mounted: false,
            process: None,
            runtime: None,
        }),
        user: extras.user.as_ref().map(|(login, _)| login.clone()),
        bridge: br,
        nodes: (1..=n)
            .map(|i| NodeState {
                name: format!("node-{i}"),
                address: node_address(subnet, i),
                netns: None,
                veth: None,
                veth2: None,
                machine: (kind == Kind::Systemd).then(|| format!("{name}-node-{i}")),
                overlay_mounted: false,
                process: None,
                runtime: None,
            })
            .collect(),
        runtime: extras.runtime,
    };
    if kind == Kind::Netns {
        netns::name_nodes(&mut state);
    }
    // Recorded before anything is made (the user included), so a failed `up` removes it.
    state.save()?;
    let password = extras.user.as_ref().map(|(_, p)| p.as_str());
    // Netns nodes bind-mount host directories that the last lab going down removes: hold the
    // host lock until this lab's nodes have mounted them.
    let host_lock = if kind == Kind::Netns || state.bastion.is_some() {
        Some(host_lock()?)
    } else {
        None
    };
    let built = build(&mut state, lower.as_deref(), password);
    drop(host_lock);
    match built {
        Ok(()) => {
            eprintln!("lab {name} up in {:.1} s", started.elapsed().as_secs_f64());
            crate::outln!("{}", dir.join("profile.yaml").display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: lab up failed: {e}\nremoving what it made");
            if let Err(e2) = teardown(&mut state) {
                eprintln!("error: tear-down after the failure: {e2}");
            }
            Err(e)
        }
    }
}

fn build(state: &mut State, lower: Option<&Path>, password: Option<&str>) -> Result<(), LabError> {
    let dir = lab_dir(&state.name);
    let key = dir.join("id_ed25519");
    keys::generate(&key, &format!("netctl-lab-{}", state.name))?;
    let client_pub = keys::public_key(&key)?;
    let ak = dir.join("authorized_keys");
    std::fs::write(&ak, format!("{client_pub}\n"))
        .map_err(|e| LabError::io("cannot write", &ak, e))?;
    // The host's /etc/passwd is the netns nodes' and the bastion's.
    let host_user = state.kind == Kind::Netns || state.bastion.is_some();
    if let (Some(login), Some(password), true) = (state.user.clone(), password, host_user) {
        user::create(None, &login, password, &client_pub)?;
    }
    bridge::create(&state.bridge, state.gateway, state.subnet)?;
    if let Some(inner) = &state.inner_bridge {
        bridge::create_internal(inner)?;
    }
    let runtime_dirs: &[&str] = match state.runtime {
        Some(_) => runtime::RUNTIME_DIRS,
        None => &[],
    };
    if state.kind == Kind::Netns || state.bastion.is_some() {
        register_host_dirs(&netns::ensure_host_dirs(runtime_dirs)?)?;
    }
    // Made once, imported by every node.
    let image = match state.runtime {
        Some(_) => Some(build_sandbox_image(&dir)?),
        None => None,
    };

    let prefix = state.subnet.prefix();
    let bridge = state.node_bridge().to_string();
    let login = state.user.clone();
    let host_keys = match state.kind {
        Kind::Netns => for_each_node(state, 6, false, |node| {
            let host_key = netns::prepare(&dir, node)?;
            if let Some(login) = &login {
                let sudoers = netns::node_dir(&dir, &node.name).join("fs/etc/sudoers.d");
                user::grant(&sudoers, login)?;
            }
            if let Some(image) = &image {
                runtime::prepare(&dir, &node.name)?;
                netns::boot(&dir, node, &bridge, prefix)?;
                runtime::start(&dir, node)?;
                runtime::import_image(&dir, &node.name, image)?;
            } else {
                netns::boot(&dir, node, &bridge, prefix)?;
            }
            Ok(host_key)
        })?,
        Kind::Systemd => {
            let lower = lower.expect("systemd labs have a root");
            for_each_node(state, 4, false, |node| {
                nspawn::mount_overlay(&dir, node, lower)?;
                node.overlay_mounted = true;
                let host_key = nspawn::provision(&dir, node, prefix, &client_pub)?;
                if let (Some(login), Some(password)) = (&login, password) {
                    let root = nspawn::merged(&dir, &node.name);
                    user::create(Some(&root), login, password, &client_pub)?;
                    user::grant(&root.join("etc/sudoers.d"), login)?;
                }
                nspawn::boot(&dir, node, &bridge)?;
                Ok(host_key)
            })?
        }
    };
    let mut entries: Vec<_> = state
        .nodes
        .iter()
        .zip(host_keys)
        .map(|(n, k)| (n.address, k))
        .collect();
    if let Some(mut b) = state.bastion.clone() {
        let host_key = netns::prepare(&dir, &b)?;
        let booted = netns::boot_bastion(
            &dir,
            &mut b,
            (&state.bridge, state.node_bridge()),
            bastion_inner_address(state.subnet),
            state.gateway,
            prefix,
        );
        state.bastion = Some(b.clone());
        state.save()?;
        booted?;
        entries.push((b.address, host_key));
        probe::wait_all(&[(b.name.clone(), b.address)], ssh_timeout(Kind::Netns, 1))?;
    }
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, keys::known_hosts(&entries))
        .map_err(|e| LabError::io("cannot write", &kh, e))?;

    let addrs: Vec<_> = state
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.address))
        .collect();
    let timeout = ssh_timeout(state.kind, addrs.len());
    probe::in_netns(state.probe_netns(), || probe::wait_all(&addrs, timeout))??;
    profile::write(state, &dir, &preflight::cni_dir())?;

    crate::outln!(
        "lab {}: {} {} node(s) on {} (bridge {}, gateway {})",
        state.name,
        state.nodes.len(),
        state.kind.as_str(),
        state.subnet,
        state.bridge,
        state.gateway
    );
    for n in state.bastion.iter().chain(&state.nodes) {
        crate::outln!("  {:<9} {}", n.name, n.address);
    }
    crate::outln!(
        "ssh: ssh -i {} -o UserKnownHostsFile={} root@{}",
        key.display(),
        kh.display(),
        state.nodes[0].address
    );
    Ok(())
}

/// The sandbox image archive, `<lab dir>/sandbox-image.tar`, built in a work directory that is
/// removed after.
fn build_sandbox_image(dir: &Path) -> Result<std::path::PathBuf, LabError> {
    let work = dir.join("sandbox-image");
    let out = dir.join("sandbox-image.tar");
    std::fs::create_dir(&work).map_err(|e| LabError::io("cannot create", &work, e))?;
    let built = sandbox_image::build(&sandbox_image::busybox(), &work, &out);
    std::fs::remove_dir_all(&work).map_err(|e| LabError::io("cannot remove", &work, e))?;
    built.map(|()| out)
}

/// Run `f` on every node with up to `workers` at a time, saving the state after each node so
/// that whatever `f` made (a process, a mount) is recorded even if a later node fails.
/// Returns each node's result in node order.
fn for_each_node<F>(
    state: &mut State,
    workers: usize,
    keep_going: bool,
    f: F,
) -> Result<Vec<String>, LabError>
where
    F: Fn(&mut NodeState) -> Result<String, LabError> + Sync,
{
    let n = state.nodes.len();
    let queue = Mutex::new((0..n).collect::<VecDeque<usize>>());
    let results: Vec<Option<Result<String, LabError>>> = (0..n).map(|_| None).collect();
    let shared = Mutex::new((&mut *state, results));
    std::thread::scope(|s| {
        for _ in 0..workers.min(n) {
            s.spawn(|| loop {
                let Some(i) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let mut node = shared.lock().unwrap().0.nodes[i].clone();
                let r = f(&mut node);
                let failed = r.is_err();
                let mut g = shared.lock().unwrap();
                g.0.nodes[i] = node;
                let _ = g.0.save();
                g.1[i] = Some(r);
                if failed && !keep_going {
                    // Stop handing out work: the whole lab is torn down anyway.
                    queue.lock().unwrap().clear();
                }
            });
        }
    });
    let (state, results) = shared.into_inner().unwrap();
    state.save()?;
    let mut out = Vec::with_capacity(n);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                return Err(LabError::Failed(format!("{}: {e}", state.nodes[i].name)));
            }
            None => return Err(LabError::Failed("stopped after an earlier failure".into())),
        }
    }
    Ok(out)
}

pub fn down(name: &str) -> Result<i32, LabError> {
    validate_name(name)?;
    preflight::require_root()?;
    let dir = lab_dir(name);
    if !dir.exists() {
        crate::outln!("lab {name} is not up: nothing to remove");
        return Ok(0);
    }
    let mut state = match State::load(name) {
        Ok(s) => s,
        // `up` claimed the directory but died before its first record: nothing else was made.
        Err(LabError::BadInput(_)) => {
            remove_lab_dir(&dir)?;
            crate::outln!("lab {name} removed");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    teardown(&mut state)?;
    crate::outln!("lab {name} removed");
    Ok(0)
}

/// Undo everything `state` records, node by node (in parallel), then the bridge, the host
/// mount points (when no other lab uses them) and the lab directory.
fn teardown(state: &mut State) -> Result<(), LabError> {
    let dir = lab_dir(&state.name);
    let kind = state.kind;
    let workers = match kind {
        Kind::Netns => 8,
        // Halting is mostly waiting for systemd inside: all at once.
        Kind::Systemd => state.nodes.len(),
    };
    let nodes = for_each_node(state, workers.max(1), true, |node| {
        match kind {
            Kind::Netns => netns::halt(node)?,
            Kind::Systemd => {
                nspawn::halt(node);
                nspawn::unmount(&dir, node)?;
            }
        }
        Ok(String::new())
    });
    if let Some(mut b) = state.bastion.clone() {
        let halted = netns::halt(&mut b);
        state.bastion = Some(b);
        state.save()?;
        halted?;
    }
    bridge::delete(&state.bridge)?;
    if let Some(inner) = &state.inner_bridge {
        bridge::delete(inner)?;
    }
    // After the nodes: no sshd session of the user is left to keep it busy.
    if let Some(login) = &state.user {
        user::remove(login)?;
    }
    // A node that could not be removed keeps the state (and the directory) for another `down`.
    nodes?;
    {
        let _lock = host_lock()?;
        if other_labs(&state.name).is_empty() {
            remove_host_dirs();
        }
    }
    remove_lab_dir(&dir)
}

/// Remove a lab directory, but never through a mount (an overlay still mounted would have its
/// files deleted through it).
fn remove_lab_dir(dir: &Path) -> Result<(), LabError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| LabError::io("cannot read", "/proc/self/mountinfo", e))?;
    let prefix = format!("{}/", dir.display());
    if let Some(m) = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .find(|m| m.starts_with(&prefix))
    {
        return Err(LabError::Failed(format!(
            "{m} is still mounted; not removing {}",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(|e| LabError::io("cannot remove", dir, e))
}

/// Names of the other labs with a state file.
fn other_labs(name: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(labs_root()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n != name)
        .collect()
}

/// Serialises labs that create, use or remove the shared host mount points (an exclusive flock,
/// released when the file is dropped).
fn host_lock() -> Result<std::fs::File, LabError> {
    use std::os::fd::AsRawFd;
    let root = labs_root();
    std::fs::create_dir_all(&root).map_err(|e| LabError::io("cannot create", &root, e))?;
    let path = root.join(".host-lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LabError::io("cannot open", &path, e))?;
    // SAFETY: flock on a file descriptor we own; it is released when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(LabError::io(
            "cannot lock",
            &path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

/// Host mount points created for netns nodes are shared by all labs: recorded in one file and
/// removed (if still empty) by the last lab to go down.
fn host_dirs_file() -> std::path::PathBuf {
    labs_root().join("host-dirs")
}

fn register_host_dirs(dirs: &[std::path::PathBuf]) -> Result<(), LabError> {
    if dirs.is_empty() {
        return Ok(());
    }
    use std::io::Write;
    let path = host_dirs_file();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| LabError::io("cannot open", &path, e))?;
    let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    f.write_all(text.as_bytes())
        .map_err(|e| LabError::io("cannot write", &path, e))
}

fn remove_host_dirs() {
    let path = host_dirs_file();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    // Children were recorded after their parents: remove in reverse. rmdir only removes an empty
    // directory, so nothing someone put there meanwhile is lost.
    for d in text.lines().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_file(&path);
}

pub fn status(name: &str) -> Result<i32, LabError> {
    validate_name(name)?;
    // The lab's state is root's: without root, say so (exit 2) rather than fail reading it.
    preflight::require_root()?;
    let info = LabInfo::load(name)?;
    crate::outln!(
        "lab {} ({}, {} bridge {}, {})",
        info.name,
        info.kind.as_str(),
        info.subnet,
        info.bridge,
        info.dir.display()
    );
    crate::outln!("{:<10} {:<15} {:<8} SSH", "NODE", "ADDRESS", "PID");
    let mut down = 0;
    let answers = probe::in_netns(info.probe_netns.as_deref(), || {
        info.nodes
            .iter()
            .map(|n| probe::ssh_answers(n.address, Duration::from_secs(2)))
            .collect::<Vec<_>>()
    })?;
    if let Some(b) = info.bastion {
        let up = probe::ssh_answers(b, Duration::from_secs(2));
        crate::outln!(
            "{:<10} {:<15} {:<8} {}",
            "bastion",
            b.to_string(),
            "-",
            if up { "up" } else { "down" }
        );
        if !up {
            down += 1;
        }
    }
    for (n, up) in info.nodes.iter().zip(answers) {
        if !up {
            down += 1;
        }
        let pid = n.pid.map_or("-".to_string(), |p| p.to_string());
        let ssh = if up { "up" } else { "down" };
        crate::outln!(
            "{:<10} {:<15} {:<8} {ssh}",
            n.name,
            n.address.to_string(),
            pid
        );
    }
    Ok(if down == 0 { 0 } else { 1 })
}

pub fn exec(name: &str, node: &str, command: &[String]) -> Result<i32, LabError> {
    validate_name(name)?;
    preflight::require_root()?;
    preflight::require_nsenter()?;
    let info = LabInfo::load(name)?;
    let n = info
        .node(node)
        .ok_or_else(|| LabError::BadInput(format!("lab {name:?} has no node {node:?}")))?;
    let pid = n
        .leader_pid
        .ok_or_else(|| LabError::Failed(format!("{node} is not running")))?;
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t").arg(pid.to_string());
    match info.kind {
        Kind::Netns => cmd.args(["-n", "-m", "-u"]),
        // The container's PID 1: every namespace it has (pid, ipc, cgroup too).
        Kind::Systemd => cmd.arg("-a"),
    };
    cmd.arg("--").args(command);
    let status = cmd.status().map_err(|source| LabError::Spawn {
        command: super::cmd::describe(&cmd),
        source,
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

pub fn restart(name: &str, node: &str) -> Result<i32, LabError> {
    validate_name(name)?;
    preflight::require_root()?;
    let mut state = State::load(name)?;
    preflight::require_packages(state.kind)?;
    let i = state.node(node)?;
    let dir = lab_dir(name);
    let started = Instant::now();
    let mut n = state.nodes[i].clone();
    let r = match state.kind {
        Kind::Netns => netns::halt(&mut n).and_then(|()| {
            state.nodes[i] = n.clone();
            state.save()?;
            netns::boot(&dir, &mut n, state.node_bridge(), state.subnet.prefix())?;
            // The runtime's disk (images, snapshots) is kept, like the node's.
            match state.runtime {
                Some(_) => runtime::start(&dir, &mut n),
                None => Ok(()),
            }
        }),
        Kind::Systemd => {
            nspawn::halt(&mut n);
            state.nodes[i] = n.clone();
            state.save()?;
            let mounted = if n.overlay_mounted {
                Ok(())
            } else {
                nspawn::mount_overlay(&dir, &n, &rootfs::cache_dir()).map(|()| {
                    n.overlay_mounted = true;
                })
            };
            mounted.and_then(|()| nspawn::boot(&dir, &mut n, state.node_bridge()))
        }
    };
    state.nodes[i] = n.clone();
    state.save()?;
    r?;
    let timeout = ssh_timeout(state.kind, 1);
    probe::in_netns(state.probe_netns(), || {
        probe::wait_all(&[(n.name.clone(), n.address)], timeout)
    })??;
    crate::outln!(
        "{node} restarted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// The labs root ends up in sshd configs and mount options: keep it to plain characters, and out
/// of the directories netns nodes cover (they would hide the lab's keys from the node's sshd).
fn check_labs_root() -> Result<(), LabError> {
    let root = labs_root();
    let s = root.to_str().unwrap_or("");
    let plain = s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if !plain {
        return Err(LabError::BadInput(format!(
            "NETCTL_LAB_ROOT {:?} must be an absolute path of a-z, 0-9, '/', '.', '_', '-'",
            root.display()
        )));
    }
    for d in netns::NODE_DIRS {
        if root.starts_with(d) {
            return Err(LabError::BadInput(format!(
                "NETCTL_LAB_ROOT {} is under {d}, which lab nodes replace with their own",
                root.display()
            )));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io("cannot chmod", path, e))
}

/// `lab restart-runtime`: stop and start the container runtime of the named nodes (all when none
/// is named), as `systemctl restart containerd` would on a real node: netns nodes have no init
/// system, so netctl reports that restart as skipped and the lab does it. Pods keep running.
pub fn restart_runtime(name: &str, nodes: &[String]) -> Result<i32, LabError> {
    validate_name(name)?;
    preflight::require_root()?;
    let mut state = State::load(name)?;
    if state.runtime.is_none() {
        return Err(LabError::BadInput(format!(
            "lab {name:?} runs no container runtime (lab up --runtime containerd)"
        )));
    }
    preflight::require_runtime()?;
    let picked: Vec<usize> = if nodes.is_empty() {
        (0..state.nodes.len()).collect()
    } else {
        nodes
            .iter()
            .map(|n| state.node(n))
            .collect::<Result<_, _>>()?
    };
    let dir = lab_dir(name);
    for i in picked {
        let mut n = state.nodes[i].clone();
        runtime::stop(&mut n);
        state.nodes[i] = n.clone();
        state.save()?;
        let started = runtime::start(&dir, &mut n);
        state.nodes[i] = n.clone();
        state.save()?;
        started?;
        crate::outln!("{}: containerd restarted", n.name);
    }
    Ok(0)
}
