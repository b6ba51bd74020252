//! Shared by the end-to-end tests: bring a lab up with the real binary, run commands in its nodes,
//! and tear it down when the test ends (also when it fails). Lab tests need root; they say why
//! they skip without it, and under CI=true they fail instead of skipping.
#![allow(dead_code)]

pub mod conn;
pub mod cri;
pub mod pty;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn netctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netctl"));
    c.env("NETCTL_NO_PROGRESS", "1");
    c
}

/// Whether lab tests can run here; prints why not. Panics under CI, where skipping would hide a
/// broken lab.
pub fn can_run(test: &str) -> bool {
    let root = unsafe_geteuid() == 0;
    if root {
        return true;
    }
    let why = "lab tests need root (network namespaces, bridges, systemd-nspawn)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why}, and CI=true never skips");
    }
    eprintln!("SKIP {test}: {why}; run as root (sudo scripts/test.sh)");
    false
}

fn unsafe_geteuid() -> u32 {
    // /proc/self/status avoids a libc dependency for one number.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

pub struct Lab {
    pub name: String,
    pub profile: PathBuf,
    pub nodes: usize,
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    /// `netctl lab up`; `subnet_octet` picks 10.240.<octet>.0/24 so labs in parallel don't collide.
    pub fn up(name: &str, kind: &str, nodes: usize, subnet_octet: u8) -> Lab {
        Lab::up_with(name, kind, nodes, subnet_octet, &[])
    }

    /// `Lab::up` with more `lab up` flags (--bastion, --user ...).
    pub fn up_with(name: &str, kind: &str, nodes: usize, subnet_octet: u8, extra: &[&str]) -> Lab {
        // A lab left by an earlier, killed test run is removed first.
        let _ = netctl().args(["lab", "down", "--name", name]).output();
        let out = run_ok(
            netctl()
                .args([
                    "lab",
                    "up",
                    "--name",
                    name,
                    "--kind",
                    kind,
                    "--nodes",
                    &nodes.to_string(),
                    "--subnet",
                    &format!("10.240.{subnet_octet}.0/24"),
                ])
                .args(extra),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let profile = PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("lab up prints the profile path")
                .trim(),
        );
        assert!(profile.exists(), "{}", profile.display());
        Lab {
            name: name.to_string(),
            profile,
            nodes,
        }
    }

    /// Run a shell command inside a node (`netctl lab exec`).
    pub fn exec(&self, node: &str, script: &str) -> Output {
        netctl()
            .args([
                "lab", "exec", "--name", &self.name, node, "--", "sh", "-c", script,
            ])
            .output()
            .expect("lab exec")
    }

    pub fn exec_ok(&self, node: &str, script: &str) -> String {
        let out = self.exec(node, script);
        assert!(
            out.status.success(),
            "{node}: {script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn node(&self, i: usize) -> String {
        format!("node-{i}")
    }

    pub fn profile_text(&self) -> String {
        std::fs::read_to_string(&self.profile).unwrap()
    }

    /// A copy of the lab profile with `edit` applied to its YAML, next to it.
    pub fn profile_variant(&self, suffix: &str, edit: impl Fn(&mut serde_yaml::Value)) -> PathBuf {
        let mut v: serde_yaml::Value = serde_yaml::from_str(&self.profile_text()).unwrap();
        edit(&mut v);
        let p = self
            .profile
            .with_file_name(format!("profile-{suffix}.yaml"));
        std::fs::write(&p, serde_yaml::to_string(&v).unwrap()).unwrap();
        p
    }

    /// Run netctl with `args` and `-p profile`.
    pub fn netctl(&self, args: &[&str], profile: &Path) -> Output {
        netctl()
            .args(args)
            .arg("-p")
            .arg(profile)
            .output()
            .expect("netctl")
    }
}

impl Lab {
    /// A pod made with the real bridge CNI plugin from the node's own 10-bridge.conf; its IP.
    pub fn make_pod(&self, node: &str, pod: &str) -> String {
        let out = self.exec_ok(
            node,
            &format!(
                "ip netns add {pod} && CNI_COMMAND=ADD CNI_CONTAINERID={pod} CNI_NETNS=/var/run/netns/{pod} CNI_IFNAME=eth0 \
                 CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge < /etc/cni/net.d/10-bridge.conf"
            ),
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{node}: CNI result {out}: {e}"));
        let addr = v["ips"][0]["address"].as_str().unwrap().to_string();
        addr.split('/').next().unwrap().to_string()
    }

    /// CNI DEL and the namespace gone.
    pub fn remove_pod(&self, node: &str, pod: &str) {
        let _ = self.exec(
            node,
            &format!(
                "CNI_COMMAND=DEL CNI_CONTAINERID={pod} CNI_NETNS=/var/run/netns/{pod} CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
                 /usr/lib/cni/bridge < /etc/cni/net.d/10-bridge.conf; ip netns del {pod}"
            ),
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = netctl()
            .args(["lab", "down", "--name", &self.name])
            .output();
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// netns nodes share the host's /usr/local/bin and CNI plugin directory: a profile that installs
/// programs (flanneld as a systemd unit) points `kubernetes.binDir` and `networking.cniBinDir`
/// into the node's own /root instead, or every node (and the host) would get one shared copy.
pub fn private_bin_dirs(v: &mut serde_yaml::Value) {
    v["kubernetes"]["binDir"] = "/root/netctl-test/bin".into();
    v["networking"]["cniBinDir"] = "/root/netctl-test/cni-bin".into();
}

/// Stand-ins for flanneld and flannel's CNI plugin (labs have neither), written into `dir`, and
/// the `networking.flannel` fields that name them, as a YAML flow-map body:
/// `flanneld: { file: ..., sha256: ... }, cniPlugin: { ... }`. Each is a different script, so a
/// mixed-up install shows.
pub fn flannel_binaries(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mut fields = Vec::new();
    for (field, name) in [("flanneld", "flanneld"), ("cniPlugin", "flannel")] {
        let content = format!("#!/bin/sh\n# netctl test stand-in for {name}\nexit 0\n");
        let path = dir.join(format!("stand-in-{name}"));
        std::fs::write(&path, &content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        fields.push(format!(
            "{field}: {{ file: {}, sha256: {} }}",
            path.display(),
            netctl::profile::sha256_hex(content.as_bytes())
        ));
    }
    fields.join(", ")
}
