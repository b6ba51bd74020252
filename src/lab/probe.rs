//! "Does the node's sshd answer?": a TCP connect plus the SSH banner, from the root namespace
//! over the lab bridge (the path every client takes).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::LabError;

/// True if something at addr:22 sends an `SSH-` banner within `timeout`.
pub fn ssh_answers(addr: Ipv4Addr, timeout: Duration) -> bool {
    let sa = SocketAddr::from((addr, 22));
    let Ok(mut s) = TcpStream::connect_timeout(&sa, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    &buf == b"SSH-"
}

/// Run `f` on a thread inside the network namespace /run/netns/NS (the root namespace when None): behind a
/// bastion, the nodes are reachable only from its namespace. setns affects only the calling thread.
pub fn in_netns<T: Send>(netns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    let Some(ns) = netns else { return Ok(f()) };
    let path = std::path::Path::new("/run/netns").join(ns);
    let file = std::fs::File::open(&path).map_err(|e| LabError::io("cannot open", &path, e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace fd we hold open; it changes only this thread's namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(LabError::io(
                    "cannot enter the network namespace",
                    &path,
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join()
        .expect("probe thread")
    })
}

/// Wait until every address answers, or fail naming the ones that did not.
pub fn wait_all(nodes: &[(String, Ipv4Addr)], timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&(String, Ipv4Addr)> = nodes.iter().collect();
    loop {
        pending.retain(|(_, a)| !ssh_answers(*a, Duration::from_millis(500)));
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
            return Err(LabError::Timeout {
                what: format!("sshd on {}", names.join(", ")),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
