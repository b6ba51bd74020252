//! A script that stays on its channel: started like any other (a `sh` program on stdin, as root),
//! it then reads requests from the rest of stdin and answers them on stdout, until netctl closes
//! stdin. Preflight's agent is one: its listeners must outlive round 1, and a process tied to its
//! channel is gone when netctl is (the channel closes with the connection), with no pid file, no
//! stop script and no process left to find on the node.
//!
//! Nothing is written after the script until the node has answered (`until` a marker the script
//! prints once it has read all of itself), so the shell never takes a request for script text.

use std::time::Duration;

use russh::{client, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::time::{timeout, timeout_at, Instant};

use super::sudo::{self, Mode};
use super::{Output, TransportError};

pub struct Conversation {
    node: String,
    what: String,
    /// How the script became root: with a password, a script that ends having run nothing
    /// because sudo did not ask for it is told apart (sudo.rs).
    sudo: Mode,
    reader: ChannelReadHalf,
    writer: ChannelWriteHalf<client::Msg>,
    /// Stdout read and not yet returned.
    buf: Vec<u8>,
    stderr: Vec<u8>,
    /// The command's exit status, once it has ended.
    status: Option<u32>,
    closed: bool,
}

impl Conversation {
    pub(crate) async fn start(
        node: &str,
        what: &str,
        sudo: &Mode,
        channel: russh::Channel<client::Msg>,
        command: &str,
        stdin: &[u8],
        limit: Duration,
    ) -> Result<Conversation, TransportError> {
        let (reader, writer) = channel.split();
        let mut c = Conversation {
            node: node.to_string(),
            what: what.to_string(),
            sudo: sudo.clone(),
            reader,
            writer,
            buf: Vec::new(),
            stderr: Vec::new(),
            status: None,
            closed: false,
        };
        let deadline = Instant::now() + limit;
        timeout_at(deadline, c.writer.exec(true, command.as_bytes()))
            .await
            .map_err(|_| c.timed_out(limit))?
            .map_err(|e| c.ssh_err("starting the command", e))?;
        c.send(stdin).await?;
        Ok(c)
    }

    /// Stdout up to and including the first line that is `marker`, within `limit`. When the
    /// command ends first, all it printed (the caller finds no marker in it); `ended` then says so.
    pub async fn until(&mut self, marker: &str, limit: Duration) -> Result<String, TransportError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = line_end(&self.buf, marker.as_bytes()) {
                let rest = self.buf.split_off(end);
                let got = std::mem::replace(&mut self.buf, rest);
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            if self.closed {
                if self.not_asked() {
                    return Err(sudo::not_asked(&self.node));
                }
                let got = std::mem::take(&mut self.buf);
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            match timeout_at(deadline, self.reader.wait()).await {
                Err(_) => return Err(self.timed_out(limit)),
                Ok(msg) => self.take(msg),
            }
        }
    }

    /// Whether the command has ended (its channel closed).
    pub fn ended(&self) -> bool {
        self.closed
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        if data.is_empty() {
            return Ok(());
        }
        self.writer
            .data(data)
            .await
            .map_err(|e| self.ssh_err("sending to the command", e))
    }

    /// Close stdin and wait, up to `limit`, for the command to end: its exit status and what it
    /// wrote on stderr. One that does not end in time is sent SIGKILL and its channel closed.
    pub async fn finish(mut self, limit: Duration) -> Result<(u32, String), TransportError> {
        let deadline = Instant::now() + limit;
        let _ = self.writer.eof().await;
        while !self.closed {
            match timeout_at(deadline, self.reader.wait()).await {
                Err(_) => {
                    let _ = timeout(Duration::from_millis(200), async {
                        let _ = self.writer.signal(Sig::KILL).await;
                        let _ = self.writer.close().await;
                    })
                    .await;
                    return Err(self.timed_out(limit));
                }
                Ok(msg) => self.take(msg),
            }
        }
        let stderr = String::from_utf8_lossy(&self.stderr).into_owned();
        self.status
            .map(|s| (s, stderr))
            .ok_or_else(|| TransportError::Protocol {
                node: self.node.clone(),
                message: format!(
                    "channel for {} closed without an exit status (connection lost?)",
                    self.what
                ),
            })
    }

    /// Ended as the root side does when sudo did not read the password (nothing was run).
    fn not_asked(&self) -> bool {
        let Some(status) = self.status else {
            return false;
        };
        let out = Output {
            status,
            stdout: Vec::new(),
            stderr: self.stderr.clone(),
        };
        sudo::password_not_asked(&self.sudo, &out)
    }

    fn take(&mut self, msg: Option<ChannelMsg>) {
        match msg {
            Some(ChannelMsg::Data { data }) => self.buf.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => self.stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => self.status = Some(exit_status),
            Some(ChannelMsg::ExitSignal { .. }) => self.status = Some(255),
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => self.closed = true,
            Some(_) => {}
        }
    }

    fn timed_out(&self, limit: Duration) -> TransportError {
        TransportError::CommandTimeout {
            node: self.node.clone(),
            command: self.what.clone(),
            timeout: limit,
        }
    }

    fn ssh_err(&self, action: &str, source: russh::Error) -> TransportError {
        TransportError::Ssh {
            node: self.node.clone(),
            action: format!("{action} for {}", self.what),
            source,
        }
    }
}

/// The offset just past the first line of `buf` that is exactly `marker`, if a whole one is there.
fn line_end(buf: &[u8], marker: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        if &buf[start..start + nl] == marker {
            return Some(start + nl + 1);
        }
        start += nl + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_end;

    #[test]
    fn a_marker_is_a_whole_line() {
        assert_eq!(line_end(b"a\nend\nb", b"end"), Some(6));
        assert_eq!(line_end(b"end\n", b"end"), Some(4));
        assert_eq!(
            line_end(b"the end\nend", b"end"),
            None,
            "not yet a whole line"
        );
        assert_eq!(line_end(b"ending\n", b"end"), None);
        assert_eq!(line_end(b"", b"end"), None);
    }
}
