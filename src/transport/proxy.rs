//! ssh config `ProxyCommand`: the SSH connection runs over a local command's stdin and stdout
//! (`ssh -W %h:%p gw`, `aws ssm start-session ...`), as OpenSSH does. Its stderr is kept (the last
//! few KiB) so a failed handshake can say what the command said.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, Join};
use tokio::process::{ChildStdin, ChildStdout, Command};

/// What the command printed on stderr, capped.
#[derive(Clone, Default)]
pub struct Stderr(Arc<Mutex<Vec<u8>>>);

const STDERR_CAP: usize = 4096;

impl Stderr {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
            .trim()
            .to_string()
    }
}

/// Start `sh -c command`; the stream is its stdout (read) and stdin (write). The process ends
/// when the session closes its side (EOF on stdin); a task reaps it.
pub fn spawn(command: &str) -> std::io::Result<(Join<ChildStdout, ChildStdin>, Stderr)> {
    let mut cmd = Command::new("sh");
    // An operator's command (ssh, aws ssm, ...): the secrets were removed at start-up; again here.
    for name in super::secrets::ENV_NAMES {
        cmd.env_remove(name);
    }
    let mut child = cmd
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let stderr = Stderr::default();
    let kept = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut k = kept.0.lock().unwrap_or_else(|p| p.into_inner());
            k.extend_from_slice(&buf[..n]);
            let over = k.len().saturating_sub(STDERR_CAP);
            k.drain(..over);
        }
        let _ = child.wait().await;
    });
    Ok((tokio::io::join(stdout, stdin), stderr))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real shell command as the transport: bytes go through it both ways, stderr is kept.
    #[tokio::test]
    async fn bytes_flow_through_the_command() {
        let (mut s, stderr) = super::spawn("echo starting >&2; tr a-z A-Z").unwrap();
        s.write_all(b"hello").await.unwrap();
        // Closing stdin (what a closed session does) is dropping it: shutdown only flushes.
        let (mut out_pipe, in_pipe) = s.into_inner();
        drop(in_pipe);
        let mut out = String::new();
        let read = out_pipe.read_to_string(&mut out);
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the command ends at EOF")
            .unwrap();
        assert_eq!(out, "HELLO");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(stderr.text(), "starting");
    }
}
