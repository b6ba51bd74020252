//! Transport against a real OpenSSH sshd on 127.0.0.1 (no mocks).
//!
//! Each test starts its own `/usr/sbin/sshd -D -e -f <config>` in a temp dir, on a free port, with generated
//! host and client keys, and kills it (by its PID) when the test ends. sshd needs root: without root the
//! tests print why and return, except under CI=true, where they fail instead of skipping quietly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netctl::transport::{Session, Target, TransportError, Upload};

const SSHD: &str = "/usr/sbin/sshd";

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when the tests can run; prints why not, or panics under CI=true.
fn can_run() -> bool {
    let why = if !is_root() {
        "not running as root (sshd needs root to start sessions)"
    } else if !Path::new(SSHD).exists() {
        "/usr/sbin/sshd is missing (apt-get install openssh-server)"
    } else {
        return true;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("transport tests cannot run: {why}; CI must not skip them");
    }
    eprintln!("SKIPPING transport test: {why}");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Generate an ed25519 key pair; returns the public key as `ssh-ed25519 AAAA...`.
fn keygen(path: &Path) -> String {
    keygen_type(path, "ed25519")
}

fn keygen_type(path: &Path, kind: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
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

/// A running sshd; killed by its PID on drop.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// `ssh-ed25519 AAAA...` of the server.
    host_public: String,
    client_key: PathBuf,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Child::kill signals exactly this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start() -> Option<Sshd> {
        if !can_run() {
            return None;
        }
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_public = keygen(&d.join("host_key"));
        let client_public = keygen(&d.join("client_key"));
        fs::write(d.join("authorized_keys"), format!("{client_public}\n")).unwrap();
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             UseDNS no\nMaxStartups 100\nMaxSessions 100\n\
             SetEnv SHLVL=1\n",
            d = d.display()
        );
        // SetEnv SHLVL=1: bash skips ~/.bashrc for ssh commands when SHLVL is set. This host's root
        // .bashrc runs `pyenv init` (0.1-0.3 s per command), which would swamp what the transport costs;
        // lab nodes avoid it the same way with a private /root (LAB-NOTES.md).
        fs::write(d.join("sshd_config"), config).unwrap();
        let log = d.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd {
            child,
            client_key: d.join("client_key"),
            dir,
            port,
            host_public,
            log,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited ({status}): {}", sshd.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sshd)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts file that trusts this server.
    fn trusted_known_hosts(&self) -> PathBuf {
        let path = self.path("known_hosts");
        fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_public),
        )
        .unwrap();
        path
    }

    fn target(&self) -> Target {
        Target {
            name: "node-1".into(),
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            identity_files: vec![self.client_key.clone()],
            known_hosts: self.trusted_known_hosts(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            ..Target::default()
        }
    }

    async fn session(&self) -> Session {
        Session::connect(&self.target()).await.expect("connect")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn exec_status_stdout_stderr_and_stdin() {
    let Some(sshd) = Sshd::start() else { return };
    let session = sshd.session().await;

    let out = session
        .exec("echo out; echo err >&2; exit 3", b"")
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    let out = session.exec("cat", b"hello\x00world").await.unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout, b"hello\x00world");

    // Large stdin while the command first writes a lot: reading and writing must overlap.
    let stdin = vec![b'x'; 3 << 20];
    let out = session
        .exec("head -c 4000000 /dev/zero; wc -c", &stdin)
        .await
        .unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout.len(), 4_000_000 + "3145728\n".len());
    assert!(out.stdout.ends_with(b"3145728\n"));

    // Killed by a signal: status 255 and a note.
    let out = session.exec("kill -TERM $$", b"").await.unwrap();
    assert_eq!(out.status, 255, "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signal TERM"),
        "{out:?}"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_execs_on_one_session() {
    let Some(sshd) = Sshd::start() else { return };
    let session = Arc::new(sshd.session().await);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let session = session.clone();
        tasks.spawn(async move {
            let out = session
                .exec(&format!("sleep 0.5; echo {i}"), b"")
                .await
                .unwrap();
            assert_eq!(out.status, 0);
            assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{i}\n"));
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    // Sequential would take 10 s.
    assert!(
        elapsed < Duration::from_secs(6),
        "20 execs took {elapsed:?}"
    );
    eprintln!("20 concurrent `sleep 0.5` execs on one session: {elapsed:?}");
}

#[tokio::test]
async fn sequential_exec_timing() {
    let Some(sshd) = Sshd::start() else { return };
    let session = sshd.session().await;
    session.exec("true", b"").await.unwrap();
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(session.exec("true", b"").await.unwrap().status, 0);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "TIMING: 100 sequential execs over one session: {elapsed:?} ({:?} per exec)",
        elapsed / 100
    );
    session.close().await;
}

fn temp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".netctl-upload.")
            {
                found.push(path);
            }
        }
    }
    found
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn upload(path: &str, content: &[u8], mode: u32, owner: Option<&str>) -> Upload {
    Upload {
        path: path.into(),
        content: content.to_vec(),
        mode,
        owner: owner.map(String::from),
    }
}

#[tokio::test]
async fn upload_creates_dirs_sets_mode_backs_up_and_quotes() {
    let Some(sshd) = Sshd::start() else { return };
    let session = sshd.session().await;
    let root = sshd.path("remote");
    let r = root.to_str().unwrap();

    let existing = format!("{r}/etc/cni/net.d/10-bridge.conf");
    fs::create_dir_all(Path::new(&existing).parent().unwrap()).unwrap();
    let old: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    fs::write(&existing, &old).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o751)).unwrap();

    let nasty = format!("{r}/dir with space/it's \"quoted\" $(touch {r}/pwned).conf");
    let deep = format!("{r}/a/b/c/new.conf");
    let files = vec![
        upload(&existing, b"new bridge\n", 0o644, Some("root:root")),
        upload(&nasty, b"it's `fine` $(x)\n", 0o600, None),
        upload(&deep, b"", 0o4755, Some("0:0")),
    ];
    let backups = format!("{r}/var/lib/netctl/backups/RUN 1");
    session.upload(&files, Some(&backups)).await.unwrap();

    assert_eq!(fs::read(&existing).unwrap(), b"new bridge\n");
    assert_eq!(mode_of(Path::new(&existing)), 0o644);
    assert_eq!(fs::read(&nasty).unwrap(), b"it's `fine` $(x)\n");
    assert_eq!(mode_of(Path::new(&nasty)), 0o600);
    assert_eq!(fs::read(&deep).unwrap(), b"");
    assert_eq!(mode_of(Path::new(&deep)), 0o4755);
    assert!(
        !Path::new(&format!("{r}/pwned")).exists(),
        "a path reached the shell unquoted"
    );

    // The replaced file is backed up byte-identical, with its mode; new files have no backup.
    let backup = format!("{backups}{existing}");
    assert_eq!(fs::read(&backup).unwrap(), old);
    assert_eq!(mode_of(Path::new(&backup)), 0o751);
    assert!(!Path::new(&format!("{backups}{deep}")).exists());
    assert!(
        temp_leftovers(&root).is_empty(),
        "{:?}",
        temp_leftovers(&root)
    );

    // A second upload in the same run keeps the first backup (the original).
    let again = vec![upload(&existing, b"third\n", 0o644, None)];
    session.upload(&again, Some(&backups)).await.unwrap();
    assert_eq!(fs::read(&existing).unwrap(), b"third\n");
    assert_eq!(fs::read(&backup).unwrap(), old);
    session.close().await;
}

#[tokio::test]
async fn upload_failure_names_the_path_and_renames_nothing() {
    let Some(sshd) = Sshd::start() else { return };
    let session = sshd.session().await;
    let root = sshd.path("remote");
    fs::create_dir_all(&root).unwrap();
    let r = root.to_str().unwrap();
    let first = format!("{r}/first.conf");
    fs::write(&first, b"original").unwrap();
    fs::write(format!("{r}/plainfile"), b"not a dir").unwrap();
    let bad = format!("{r}/plainfile/sub/x.conf");
    let files = vec![
        upload(&first, b"changed", 0o644, None),
        upload(&bad, b"x", 0o644, None),
    ];
    let err = session.upload(&files, None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, TransportError::UploadFailed { path, .. } if path == &bad),
        "{text}"
    );
    assert!(
        text.starts_with("node-1: ") && text.contains(&bad),
        "{text}"
    );
    assert_eq!(
        fs::read(&first).unwrap(),
        b"original",
        "a file was renamed although a later one failed"
    );
    assert!(
        temp_leftovers(&root).is_empty(),
        "{:?}",
        temp_leftovers(&root)
    );
    eprintln!("upload failure reads: {text}");

    // Invalid requests never reach the node.
    let rel = vec![upload("relative", b"", 0o644, None)];
    assert!(matches!(
        session.upload(&rel, None).await,
        Err(TransportError::InvalidUpload { .. })
    ));
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_replacement_is_never_observed_partial() {
    let Some(sshd) = Sshd::start() else { return };
    let session = sshd.session().await;
    let root = sshd.path("remote");
    fs::create_dir_all(&root).unwrap();
    let path = root.join("big.conf");
    let a = vec![b'a'; 1 << 20];
    let b = vec![b'b'; (1 << 20) + 1234];
    fs::write(&path, &a).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, path, a, b) = (stop.clone(), path.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let seen = fs::read(&path).unwrap();
                assert!(
                    seen == a || seen == b,
                    "observed a partial file of {} bytes",
                    seen.len()
                );
                reads += 1;
            }
            reads
        })
    };
    for round in 0..6 {
        let content = if round % 2 == 0 { &b } else { &a };
        let file = upload(path.to_str().unwrap(), content, 0o644, None);
        session.upload(&[file], None).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads = watcher.join().expect("watcher saw a partial file");
    assert!(reads > 0);
    assert_eq!(fs::read(&path).unwrap(), a);
    assert!(temp_leftovers(&root).is_empty());
    eprintln!("watcher read the file {reads} times during 6 replacements of 1 MiB");
}

#[tokio::test]
async fn unknown_host_key_is_refused_without_connecting() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    let other = keygen(&sshd.path("other_host_key"));
    // known_hosts knows another host, not this one.
    let before = format!("# netctl test\n[127.0.0.2]:{} {other}\n", sshd.port);
    fs::write(&target.known_hosts, &before).unwrap();
    let err = Session::connect(&target)
        .await
        .err()
        .expect("unknown key must be refused");
    assert!(err.is_refusal(), "{err}");
    assert!(
        matches!(err, TransportError::HostKeyUnknown { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.starts_with("node-1: "), "{text}");
    assert!(
        text.contains("SHA256:") && text.contains("--accept-new-host-keys"),
        "{text}"
    );
    assert!(
        text.contains(&target.known_hosts.display().to_string()),
        "{text}"
    );
    eprintln!("unknown host key reads: {text}");
    assert_eq!(
        fs::read_to_string(&target.known_hosts).unwrap(),
        before,
        "known_hosts changed"
    );

    // A missing known_hosts file is the same refusal, and is not created.
    target.known_hosts = sshd.path("missing/known_hosts");
    assert!(Session::connect(&target).await.err().unwrap().is_refusal());
    assert!(!target.known_hosts.exists());
    // No session was ever authenticated.
    assert!(
        !sshd.log_text().contains("Accepted publickey"),
        "{}",
        sshd.log_text()
    );
}

#[tokio::test]
async fn accept_new_records_the_key_then_it_is_known() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    target.known_hosts = sshd.path("fresh/known_hosts");
    target.accept_new_host_keys = true;
    let session = Session::connect(&target)
        .await
        .expect("accept-new connects");
    assert_eq!(session.exec("echo hi", b"").await.unwrap().stdout, b"hi\n");
    session.close().await;
    let recorded = fs::read_to_string(&target.known_hosts).unwrap();
    assert_eq!(
        recorded,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_public)
    );

    target.accept_new_host_keys = false;
    let session = Session::connect(&target)
        .await
        .expect("recorded key is known");
    session.close().await;
    assert_eq!(
        fs::read_to_string(&target.known_hosts).unwrap(),
        recorded,
        "recorded twice"
    );
}

#[tokio::test]
async fn changed_host_key_is_always_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    let other = keygen(&sshd.path("other_host_key"));
    let before = format!("# comment\n[127.0.0.1]:{} {other}\n", sshd.port);
    fs::write(&target.known_hosts, &before).unwrap();
    for accept_new in [false, true] {
        target.accept_new_host_keys = accept_new;
        let err = Session::connect(&target)
            .await
            .err()
            .expect("changed key must be refused");
        assert!(err.is_refusal(), "{err}");
        assert!(
            matches!(err, TransportError::HostKeyChanged { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 2"), "{err}");
    }
    assert_eq!(fs::read_to_string(&target.known_hosts).unwrap(), before);
}

#[tokio::test]
async fn wrong_client_key_is_an_auth_error() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    target.identity_files = vec![sshd.path("stranger_key")];
    keygen(&target.identity_files[0]);
    let err = Session::connect(&target)
        .await
        .err()
        .expect("auth must fail");
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(!err.is_refusal());
    let text = err.to_string();
    assert!(
        text.starts_with("node-1: ") && text.contains("root") && text.contains("stranger_key"),
        "{text}"
    );

    // A missing key file is skipped (as OpenSSH does); with no agent either, nothing is left to try.
    target.identity_files = vec![sshd.path("no_such_key")];
    let err = Session::connect(&target).await.err().unwrap();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("no_such_key"), "{err}");

    // A file that is not a key is reported as such.
    target.identity_files = vec![sshd.path("known_hosts")];
    let err = Session::connect(&target).await.err().unwrap();
    assert!(matches!(err, TransportError::KeyFile { .. }), "{err}");
}

#[tokio::test]
async fn closed_port_is_a_quick_connect_error() {
    // No sshd needed: nothing listens on the port.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    keygen(&key);
    let target = Target {
        name: "node-x".into(),
        host: "127.0.0.1".into(),
        port: free_port(),
        user: "root".into(),
        identity_files: vec![key],
        known_hosts: dir.path().join("known_hosts"),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        ..Target::default()
    };
    let started = Instant::now();
    let err = Session::connect(&target)
        .await
        .err()
        .expect("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("node-x: cannot connect to 127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test]
async fn command_timeout_and_session_survives() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    target.command_timeout = Duration::from_secs(1);
    let session = Session::connect(&target).await.unwrap();
    let started = Instant::now();
    let err = session.exec("sleep 5\necho never", b"").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, TransportError::CommandTimeout { .. }),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(3), "timeout took {elapsed:?}");
    assert!(
        err.to_string()
            .starts_with("node-1: command timed out after 1s: sleep 5"),
        "{err}"
    );
    // The connection is still usable afterwards.
    assert_eq!(session.exec("echo ok", b"").await.unwrap().stdout, b"ok\n");
    session.close().await;
}

#[tokio::test]
async fn rsa_client_key_authenticates() {
    let Some(sshd) = Sshd::start() else { return };
    let mut target = sshd.target();
    target.identity_files = vec![sshd.path("rsa_key")];
    let public = keygen_type(&target.identity_files[0], "rsa");
    let authorized = sshd.path("authorized_keys");
    let mut keys = fs::read_to_string(&authorized).unwrap();
    keys.push_str(&format!("{public}\n"));
    fs::write(&authorized, keys).unwrap();
    let session = Session::connect(&target)
        .await
        .expect("RSA key (rsa-sha2) connects");
    assert_eq!(
        session.exec("echo rsa", b"").await.unwrap().stdout,
        b"rsa\n"
    );
    session.close().await;
}
