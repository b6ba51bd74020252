//! The pieces a provider's teardown is made of, beyond deleting its links (`delete_link`): its
//! packet-filter chains and rules, its routes by protocol, and host-local's reservations of gone
//! pods. Each is a script under templates/teardown/ with the provider's names as arguments; the
//! names themselves, checked against the upstream source at the pinned version, live in the
//! provider's own file (docs/providers.md lists them with their source).

use super::Step;
use crate::shell::{script_file, Script};

/// host-local keeps its reservations here, one directory per CNI network name.
pub const CNI_NETWORKS: &str = "/var/lib/cni/networks";

/// What marks a provider's iptables chains and rules, and its nftables tables. Patterns are
/// POSIX extended regular expressions (awk's), anchored by the caller; an empty one matches
/// nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Firewall<'a> {
    /// Chain names that are the provider's own (flushed and deleted).
    pub chains: &'a str,
    /// Rule comments that mark the provider's rules in other chains.
    pub comments: &'a str,
    /// Interfaces that are the provider's own: a rule naming one with -i/-o is the provider's.
    pub ifaces: &'a str,
    /// nftables tables, (family, name).
    pub nft_tables: &'a [(&'a str, &'a str)],
}

/// Remove the provider's chains, the rules that mark it and its nftables tables.
pub fn firewall(provider: &str, f: &Firewall) -> Step {
    let tables = f
        .nft_tables
        .iter()
        .flat_map(|(family, name)| [*family, *name]);
    Step {
        title: format!("remove {provider}'s iptables and nftables rules"),
        command: Script::new(script_file!("teardown/firewall.sh"))
            .var("CHAINS", f.chains)
            .var("COMMENTS", f.comments)
            .var("IFACES", f.ifaces)
            .args(tables)
            .build(),
    }
}

/// Remove every IPv4 route inside `root` (the provider's pod network) whose protocol is one of
/// `protos` (names from /etc/iproute2/rt_protos or numbers), in every routing table.
pub fn routes_by_protocol(provider: &str, root: &str, protos: &[&str]) -> Step {
    Step {
        title: format!("remove {provider}'s routes ({})", protos.join(", ")),
        command: Script::new(script_file!("teardown/proto-routes.sh"))
            .var("ROOT", root)
            .args(protos)
            .build(),
    }
}

/// Remove host-local's reservations for CNI network `network` whose pod is gone.
pub fn ipam(network: &str) -> Step {
    Step {
        title: format!("remove host-local reservations of gone pods ({network})"),
        command: Script::new(script_file!("teardown/ipam.sh"))
            .var("CNI_NETWORKS", CNI_NETWORKS)
            .var("NETWORK", network)
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    /// Run a step's script with `dir` first on PATH (stand-in programs).
    fn run(step: &Step, path_dir: &Path) -> std::process::Output {
        let path = format!("{}:{}", path_dir.display(), std::env::var("PATH").unwrap());
        Command::new("sh")
            .arg("-c")
            .arg(&step.command)
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn reserve(dir: &Path, addr: &str, id: &str) {
        std::fs::write(dir.join(addr), format!("{id}\neth0\n")).unwrap();
    }

    fn ipam_in(root: &Path, network: &str) -> Step {
        let mut s = ipam(network);
        s.command = s.command.replacen(
            &format!("CNI_NETWORKS={CNI_NETWORKS}\n"),
            &format!("CNI_NETWORKS={}\n", root.display()),
            1,
        );
        assert!(
            s.command.contains(&root.display().to_string()),
            "{}",
            s.command
        );
        s
    }

    /// With a runtime that answers, a reservation whose pod it lists stays (and so does the
    /// network's directory); the others go. Without one, every reservation and the directory go.
    /// Files that are not reservations, and other networks, are never touched.
    #[test]
    fn ipam_keeps_reservations_of_pods_the_runtime_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("networks");
        let net = root.join("cbr0");
        let other = root.join("other");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let live = "a".repeat(64);
        let gone = "b".repeat(64);
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let crictl = bin.join("crictl");
        std::fs::write(&crictl, format!("#!/bin/sh\necho {live}\n")).unwrap();
        std::fs::set_permissions(&crictl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plant = || {
            reserve(&net, "10.200.0.2", &live);
            reserve(&net, "10.200.0.3", &gone);
            reserve(&net, "10.200.0.4", "");
            std::fs::write(net.join("last_reserved_ip.0"), "10.200.0.4").unwrap();
            std::fs::write(net.join("lock"), "").unwrap();
            std::fs::write(net.join("notes.txt"), "mine").unwrap();
            reserve(&other, "10.200.0.3", &gone);
        };
        plant();
        let step = ipam_in(&root, "cbr0");
        let out = run(&step, &bin);
        assert!(out.status.success(), "{out:?}");
        let mut left: Vec<_> = std::fs::read_dir(&net)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["10.200.0.2", "last_reserved_ip.0", "lock", "notes.txt"]
        );
        assert!(other.join("10.200.0.3").exists());

        // No runtime answers: a crictl that fails is no answer.
        std::fs::write(&crictl, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::remove_file(net.join("notes.txt")).unwrap();
        plant();
        std::fs::remove_file(net.join("notes.txt")).unwrap();
        let out = run(&step, &bin);
        assert!(out.status.success(), "{out:?}");
        assert!(
            !net.exists(),
            "the directory of a network with no reservation left goes"
        );
        assert!(other.join("10.200.0.3").exists());
    }

    /// A network name or directory is a quoted value, never shell text.
    #[test]
    fn names_are_values() {
        let s = ipam("a b'$(id)");
        assert!(
            s.command.contains(r"NETWORK='a b'\''$(id)'"),
            "{}",
            s.command
        );
        let s = firewall(
            "x",
            &Firewall {
                chains: "^cali-",
                comments: "^cali:",
                ifaces: "",
                nft_tables: &[("ip", "calico"), ("ip6", "calico")],
            },
        );
        assert!(s.command.contains("CHAINS='^cali-'\n"), "{}", s.command);
        assert!(
            s.command.contains("set -- ip calico ip6 calico\n"),
            "{}",
            s.command
        );
    }
}
