//! Before the lab touches anything: root, and the Debian packages it runs. The lab installs
//! nothing itself; a missing tool is named with its package (exit 2).

use std::path::PathBuf;

use super::{Kind, LabError};

/// Where containernetworking-plugins put the CNI plugins; `NETCTL_LAB_CNI_DIR` overrides it
/// (tests use it to simulate the package being absent).
pub fn cni_dir() -> PathBuf {
    std::env::var_os("NETCTL_LAB_CNI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/cni"))
}

/// What `lab up --user` runs on the host.
pub fn require_user_tools() -> Result<(), LabError> {
    for (tool, package) in [
        ("sudo", "sudo"),
        ("useradd", "passwd"),
        ("userdel", "passwd"),
        ("chpasswd", "passwd"),
        ("getent", "libc-bin"),
    ] {
        if which::which(tool).is_err() {
            return Err(LabError::BadInput(format!(
                "--user needs {tool} on this machine (apt-get install {package})"
            )));
        }
    }
    Ok(())
}

pub fn require_root() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

/// (binary, package) the lab runs on the host, by kind.
fn tools(kind: Option<Kind>) -> Vec<(&'static str, &'static str)> {
    let mut t = vec![
        ("ip", "iproute2"),
        ("sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
        ("ping", "iputils-ping"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("mount", "mount"),
    ];
    if kind == Some(Kind::Systemd) {
        t.push(("systemd-nspawn", "systemd-container"));
        t.push(("debootstrap", "debootstrap"));
    }
    t
}

/// Every tool `kind` needs, found on PATH (via `which`), and the CNI plugins.
pub fn require_packages(kind: Kind) -> Result<(), LabError> {
    for (bin, package) in tools(Some(kind)) {
        if which::which(bin).is_err() {
            return Err(LabError::MissingPackage {
                package: package.into(),
                what: format!("`{bin}` (searched PATH)"),
            });
        }
    }
    let bridge = cni_dir().join("bridge");
    if !bridge.is_file() {
        return Err(LabError::MissingPackage {
            package: "containernetworking-plugins".into(),
            what: format!("the CNI bridge plugin {}", bridge.display()),
        });
    }
    Ok(())
}

/// Only what `lab exec` needs.
pub fn require_nsenter() -> Result<(), LabError> {
    if which::which("nsenter").is_err() {
        return Err(LabError::MissingPackage {
            package: "util-linux".into(),
            what: "`nsenter` (searched PATH)".into(),
        });
    }
    Ok(())
}

/// What `lab up --runtime containerd` runs: containerd and its runc shim, runc, ctr (to import the
/// sandbox image), tar (to make it) and a static busybox (its only binary; checked when built).
pub fn require_runtime() -> Result<(), LabError> {
    for (bin, package) in [
        ("containerd", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("tar", "tar"),
    ] {
        if which::which(bin).is_err() {
            return Err(LabError::MissingPackage {
                package: package.into(),
                what: format!("`{bin}` (searched PATH)"),
            });
        }
    }
    let busybox = super::sandbox_image::busybox();
    if !busybox.is_file() {
        return Err(LabError::MissingPackage {
            package: "busybox-static".into(),
            what: format!("{} (the sandbox image's binary)", busybox.display()),
        });
    }
    Ok(())
}
