//! Issue 10, finding 5 (known_hosts markers) and the transport part of finding 10 (bad ssh input
//! exits 2, never hangs), through the real binary against a real OpenSSH sshd on 127.0.0.1.
//!
//! The sshd forces every command to `exit 97` (ForceCommand), so a run that gets past the host key
//! check and authentication fails its first remote step with a recognisable message and nothing on
//! this machine is ever changed. Each test has its own sshd, temp dir, HOME and ssh config.

mod labkit;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use labkit::text;

const SSHD: &str = "/usr/sbin/sshd";
/// What a command run through the test sshd prints, proving the connection got that far.
const FORCED: &str = "hk-forced-command";

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let public = fs::read_to_string(path.with_extension("pub")).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running sshd (killed by its PID on drop) and everything a netctl run against it needs.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    host_public: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start(test: &str) -> Option<Sshd> {
        if !labkit::can_run(test) || !Path::new(SSHD).exists() {
            return None;
        }
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_public = keygen(&d.join("host_key"));
        let client_public = keygen(&d.join("client_key"));
        fs::write(d.join("authorized_keys"), format!("{client_public}\n")).unwrap();
        fs::create_dir(d.join("home")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             UseDNS no\nForceCommand echo {FORCED} >&2; exit 97\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd {
            child,
            dir,
            port,
            host_public,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd.write_config("");
        Some(sshd)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The host as known_hosts names it.
    fn entry(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`, the line that trusts this server.
    fn plain_line(&self) -> String {
        format!("{} {}\n", self.entry(), self.host_public)
    }

    /// The ssh config every run reads: the global known_hosts is this test's own, then `extra`.
    fn write_config(&self, extra: &str) {
        fs::write(
            self.path("ssh_config"),
            format!(
                "GlobalKnownHostsFile {}\n{extra}",
                self.path("global_known_hosts").display()
            ),
        )
        .unwrap();
    }

    /// A profile with one node, this sshd; `ssh` is the profile's ssh block (flow mapping body).
    fn profile(&self, ssh: &str) -> PathBuf {
        let p = self.path("profile.yaml");
        fs::write(
            &p,
            format!(
                "apiVersion: netctl/v1\nkind: ClusterProfile\nname: hk\n\
                 kubernetes: {{ version: \"1.30\", clusterCIDR: 10.200.0.0/16, serviceCIDR: 10.32.0.0/24, manageUnits: false }}\n\
                 networking: {{ provider: routes }}\n\
                 ssh: {{ connectTimeout: 5, {ssh} }}\n\
                 nodes:\n  - {{ name: hk-node, address: 127.0.0.1, sshPort: {}, init: none }}\n",
                self.port
            ),
        )
        .unwrap();
        p
    }

    /// The usual profile: the test's client key and user known_hosts.
    fn default_profile(&self) -> PathBuf {
        self.profile(&format!(
            "identityFile: {}, knownHosts: {}",
            self.path("client_key").display(),
            self.path("known_hosts").display()
        ))
    }

    /// `netctl plan` (read-only) with this test's HOME, ssh config and no agent, bounded in time
    /// and memory so a regression shows as a failure, not a hung or swapping machine.
    fn plan(&self, profile: &Path, extra: &[&str]) -> (Output, Duration) {
        self.plan_env(profile, extra, &[])
    }

    fn plan_env(&self, profile: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
        let mut cmd = labkit::netctl();
        cmd.arg("plan")
            .arg("-p")
            .arg(profile)
            .args(extra)
            .env("HOME", self.path("home"))
            .env("NETCTL_SSH_CONFIG", self.path("ssh_config"))
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NETCTL_KEY_PASSPHRASE")
            .envs(env.iter().copied());
        run_bounded(cmd, Duration::from_secs(20))
    }
}

/// Run `cmd` with at most 2 GiB of address space; kill it (by its PID) after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    unsafe {
        cmd.pre_exec(|| {
            let max = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &max) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run netctl");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "netctl did not finish in {limit:?} (killed):\n{}",
                text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

/// The run got past the host key and authentication (and failed only at the forced command).
fn assert_connected(o: &Output) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(text(o).contains(FORCED), "{}", text(o));
}

fn assert_refused(o: &Output, says: &str) {
    assert_eq!(o.status.code(), Some(3), "{}", text(o));
    assert!(text(o).contains(says), "{}", text(o));
    assert!(!text(o).contains(FORCED), "{}", text(o));
}

/// `|1|salt|hmac` of `name`, as `ssh-keygen -H` writes it (HMAC-SHA1 keyed by the salt).
fn hashed(name: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = [7u8; 20];
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    let tag = ring::hmac::sign(&key, name.as_bytes());
    format!("|1|{}|{}", b64.encode(salt), b64.encode(tag.as_ref()))
}

#[test]
fn hk_revoked_host_key_is_refused_everywhere() {
    let Some(sshd) = Sshd::start("hk_revoked_host_key_is_refused_everywhere") else {
        return;
    };
    let user = sshd.path("known_hosts");
    let global = sshd.path("global_known_hosts");
    let profile = sshd.default_profile();
    let revoked = format!("@revoked * {}\n", sshd.host_public);

    // Control: the plain line alone is trusted.
    fs::write(&user, sshd.plain_line()).unwrap();
    assert_connected(&sshd.plan(&profile, &[]).0);

    // Revoked in the user file, after (and before) a plain line that trusts the key.
    for lines in [
        format!("{}{revoked}", sshd.plain_line()),
        format!("# revoked first\n{revoked}{}", sshd.plain_line()),
    ] {
        fs::write(&user, &lines).unwrap();
        for flags in [&[][..], &["--accept-new-host-keys"][..]] {
            let (o, _) = sshd.plan(&profile, flags);
            assert_refused(&o, "REVOKED");
            assert!(
                text(&o).contains(&user.display().to_string()),
                "{}",
                text(&o)
            );
        }
    }
    // Revoked in the global file, trusted in the user file (hashed there).
    fs::write(
        &user,
        format!("{} {}\n", hashed(&sshd.entry()), sshd.host_public),
    )
    .unwrap();
    fs::write(&global, format!("# global\n\n{revoked}")).unwrap();
    let (o, _) = sshd.plan(&profile, &[]);
    assert_refused(&o, "REVOKED");
    assert!(
        text(&o).contains(&format!("{} line 3", global.display())),
        "{}",
        text(&o)
    );
    fs::remove_file(&global).unwrap();
    assert_connected(&sshd.plan(&profile, &[]).0);

    // Known only as revoked (a hashed host field, for this host): never accepted, never recorded.
    let only = format!("@revoked {} {}\n", hashed(&sshd.entry()), sshd.host_public);
    fs::write(&user, &only).unwrap();
    for flags in [&[][..], &["--accept-new-host-keys"][..]] {
        assert_refused(&sshd.plan(&profile, flags).0, "REVOKED");
        assert_eq!(
            fs::read_to_string(&user).unwrap(),
            only,
            "known_hosts changed"
        );
    }
    // StrictHostKeyChecking accept-new in the config is no way round it either.
    sshd.write_config("Host *\n  StrictHostKeyChecking accept-new\n");
    assert_refused(&sshd.plan(&profile, &[]).0, "REVOKED");
    assert_eq!(
        fs::read_to_string(&user).unwrap(),
        only,
        "known_hosts changed"
    );
}

#[test]
fn hk_cert_authority_line_is_not_a_known_key() {
    let Some(sshd) = Sshd::start("hk_cert_authority_line_is_not_a_known_key") else {
        return;
    };
    let user = sshd.path("known_hosts");
    let profile = sshd.default_profile();
    let ca_public = keygen(&sshd.path("ca_key"));
    // The CA line names the host's own key too: still not a plain known key.
    for ca in [ca_public.as_str(), sshd.host_public.as_str()] {
        let only = format!("@cert-authority {},*.example {ca}\n", sshd.entry());
        fs::write(&user, &only).unwrap();
        for flags in [&[][..], &["--accept-new-host-keys"][..]] {
            let (o, _) = sshd.plan(&profile, flags);
            assert_refused(&o, "host certificates are not supported");
            assert!(
                text(&o).contains(&format!("{} line 1", user.display())),
                "{}",
                text(&o)
            );
            assert_eq!(
                fs::read_to_string(&user).unwrap(),
                only,
                "known_hosts changed"
            );
        }
    }
    // A CA line for other hosts only: an ordinary unknown key, recorded with --accept-new-host-keys.
    fs::write(&user, format!("@cert-authority *.example {ca_public}\n")).unwrap();
    assert_refused(&sshd.plan(&profile, &[]).0, "is unknown");
    assert_connected(&sshd.plan(&profile, &["--accept-new-host-keys"]).0);
    assert!(fs::read_to_string(&user)
        .unwrap()
        .ends_with(&sshd.plain_line()));
    // With a plain line that matches too, the key is known.
    fs::write(
        &user,
        format!(
            "@cert-authority {} {ca_public}\n{}",
            sshd.entry(),
            sshd.plain_line()
        ),
    )
    .unwrap();
    assert_connected(&sshd.plan(&profile, &[]).0);
}

/// Bad input exits 2 naming the file (and line), fast, before any node is reached.
fn assert_bad_input(o: &Output, took: Duration, says: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    for s in says {
        assert!(text(o).contains(s), "missing {s:?} in:\n{}", text(o));
    }
    assert!(!text(o).contains(FORCED), "{}", text(o));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn hk_bad_ssh_config_exits_2() {
    let Some(sshd) = Sshd::start("hk_bad_ssh_config_exits_2") else {
        return;
    };
    fs::write(sshd.path("known_hosts"), sshd.plain_line()).unwrap();
    let profile = sshd.default_profile();
    let config = sshd.path("ssh_config").display().to_string();

    sshd.write_config("Host hk-node\n  User\n");
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &[&format!("{config}:3"), "User needs a value"]);

    sshd.write_config("Host hk-node\n  ProxyJump a,b\n");
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &["only one jump host"]);

    // An Include that is a FIFO, or /dev/zero: refused, not read.
    mkfifo(&sshd.path("fifo.conf"));
    for target in [sshd.path("fifo.conf"), PathBuf::from("/dev/zero")] {
        sshd.write_config(&format!("Include {}\n", target.display()));
        let (o, took) = sshd.plan(&profile, &[]);
        assert_bad_input(
            &o,
            took,
            &[&target.display().to_string(), "not a regular file"],
        );
    }
    // The config itself as a FIFO.
    fs::remove_file(sshd.path("ssh_config")).unwrap();
    mkfifo(&sshd.path("ssh_config"));
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &[&config, "not a regular file"]);
}

#[test]
fn hk_identity_file_fifo_or_garbage_exits_2() {
    let Some(sshd) = Sshd::start("hk_identity_file_fifo_or_garbage_exits_2") else {
        return;
    };
    fs::write(sshd.path("known_hosts"), sshd.plain_line()).unwrap();
    let known = sshd.path("known_hosts").display().to_string();
    let fifo = sshd.path("key.fifo");
    mkfifo(&fifo);
    fs::write(sshd.path("garbage_key"), "not a key\n").unwrap();
    for (key, says) in [
        (fifo, "not a regular file"),
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (sshd.path("garbage_key"), "cannot use key file"),
    ] {
        let profile = sshd.profile(&format!(
            "identityFile: {}, knownHosts: {known}",
            key.display()
        ));
        let (o, took) = sshd.plan(&profile, &[]);
        assert_bad_input(&o, took, &[&key.display().to_string(), says]);
    }
    // An encrypted key with a wrong passphrase (or none to be had) is bad input too; the right one connects.
    let locked = sshd.path("locked_key");
    fs::copy(sshd.path("client_key"), &locked).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "hk right", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(status.success());
    let profile = sshd.profile(&format!(
        "identityFile: {}, knownHosts: {known}",
        locked.display()
    ));
    let (o, took) = sshd.plan_env(&profile, &[], &[("NETCTL_KEY_PASSPHRASE", "hk wrong")]);
    assert_bad_input(
        &o,
        took,
        &[
            &format!("cannot use key file {}", locked.display()),
            "passphrase given",
        ],
    );
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &["NETCTL_KEY_PASSPHRASE"]);
    let (o, _) = sshd.plan_env(&profile, &[], &[("NETCTL_KEY_PASSPHRASE", "hk right")]);
    assert_connected(&o);

    // The same key files from the ssh config (the profile names none).
    sshd.write_config(&format!(
        "Host hk-node\n  IdentityFile {}\n",
        sshd.path("key.fifo").display()
    ));
    let profile = sshd.profile(&format!("knownHosts: {known}"));
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &["key.fifo", "not a regular file"]);
}

#[test]
fn hk_known_hosts_dev_zero_fifo_or_bad_line_exits_2() {
    let Some(sshd) = Sshd::start("hk_known_hosts_dev_zero_fifo_or_bad_line_exits_2") else {
        return;
    };
    let key = sshd.path("client_key").display().to_string();
    let fifo = sshd.path("kh.fifo");
    mkfifo(&fifo);
    for kh in [PathBuf::from("/dev/zero"), fifo] {
        let profile = sshd.profile(&format!(
            "identityFile: {key}, knownHosts: {}",
            kh.display()
        ));
        let (o, took) = sshd.plan(&profile, &["--accept-new-host-keys"]);
        assert_bad_input(&o, took, &[&kh.display().to_string(), "not a regular file"]);
    }
    // The global file too.
    fs::write(sshd.path("known_hosts"), sshd.plain_line()).unwrap();
    sshd.write_config("");
    fs::write(sshd.path("ssh_config"), "GlobalKnownHostsFile /dev/zero\n").unwrap();
    let (o, took) = sshd.plan(&sshd.default_profile(), &[]);
    assert_bad_input(&o, took, &["/dev/zero", "not a regular file"]);
    sshd.write_config("");

    // A line that cannot be parsed names the file and line (a revoked line must never be skipped).
    let user = sshd.path("known_hosts");
    for bad in [
        "@revoked * ssh-ed25519 AAAA!!notbase64\n",
        "@revokd * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
        "hostonly\n",
    ] {
        fs::write(&user, format!("{}# c\n{bad}", sshd.plain_line())).unwrap();
        let (o, took) = sshd.plan(&sshd.default_profile(), &[]);
        assert_bad_input(&o, took, &[&format!("{} line 3", user.display())]);
    }
    // Too large: refused without reading it all.
    let big = fs::File::create(sshd.path("big_known_hosts")).unwrap();
    big.set_len(17 << 20).unwrap();
    let profile = sshd.profile(&format!(
        "identityFile: {key}, knownHosts: {}",
        sshd.path("big_known_hosts").display()
    ));
    let (o, took) = sshd.plan(&profile, &[]);
    assert_bad_input(&o, took, &["big_known_hosts", "larger than"]);
}
