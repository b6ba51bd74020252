//! The russh client: connect (TCP, handshake, host key check, public-key auth) and exec over channels.
//!
//! One `Session` is one SSH connection. Each exec opens its own session channel on it, so many execs can run
//! at once from several tasks (`&self`), bounded only by the server's MaxSessions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::known_hosts::{self, HostKeyStatus};
use super::upload;
use super::{Output, Target, TransportError, Upload};

/// An open, authenticated SSH connection to one node.
pub struct Session {
    node: String,
    handle: Handle<Client>,
    command_timeout: Duration,
}

/// Handler for the russh client: checks the server key against known_hosts.
struct Client {
    node: String,
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
}

/// Errors out of the handler: either russh's, or our own refusal carried through the handshake.
#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    Refused(Box<TransportError>),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_key.public_key();
        let entry = known_hosts::host_entry(&self.host, self.port);
        let refuse = |e: TransportError| Err(HandlerError::Refused(Box::new(e)));
        let status = match known_hosts::check(&self.host, self.port, &key, &self.known_hosts) {
            Ok(status) => status,
            Err(source) => {
                return refuse(TransportError::KnownHosts {
                    node: self.node.clone(),
                    action: "read",
                    path: self.known_hosts.clone(),
                    source,
                })
            }
        };
        match status {
            HostKeyStatus::Known => Ok(true),
            HostKeyStatus::Changed { line } => refuse(TransportError::HostKeyChanged {
                node: self.node.clone(),
                host_entry: entry,
                fingerprint: known_hosts::fingerprint(&key),
                known_hosts: self.known_hosts.clone(),
                line,
            }),
            HostKeyStatus::Unknown if self.accept_new => {
                match known_hosts::learn(&self.host, self.port, &key, &self.known_hosts) {
                    Ok(()) => Ok(true),
                    Err(source) => refuse(TransportError::KnownHosts {
                        node: self.node.clone(),
                        action: "record the new host key in",
                        path: self.known_hosts.clone(),
                        source,
                    }),
                }
            }
            HostKeyStatus::Unknown => refuse(TransportError::HostKeyUnknown {
                node: self.node.clone(),
                host_entry: entry,
                fingerprint: known_hosts::fingerprint(&key),
                known_hosts: self.known_hosts.clone(),
            }),
        }
    }
}

fn client_config() -> client::Config {
    client::Config {
        // Without it every channel round trip waits on Nagle + delayed ACK (about 45 ms, see LAB-NOTES.md).
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        inactivity_timeout: None,
        // Default algorithms: curve25519, ed25519, chacha20-poly1305 against OpenSSH: fast and secure.
        ..Default::default()
    }
}

impl Session {
    /// Connect, check the host key, authenticate with the key file. `connect_timeout` bounds all of it.
    pub async fn connect(target: &Target) -> Result<Session, TransportError> {
        let node = target.name.clone();
        // The key file is local: read it first so a bad key is reported even when the node is down.
        let key = russh::keys::load_secret_key(&target.identity_file, None).map_err(|source| {
            TransportError::KeyFile {
                node: node.clone(),
                path: target.identity_file.clone(),
                source,
            }
        })?;
        let key = Arc::new(key);
        // `host:port`, bracketed when the host is an IPv6 literal.
        let addr_text = if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        };
        match timeout(
            target.connect_timeout,
            Self::connect_inner(target, key, &addr_text),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(TransportError::ConnectTimeout {
                node,
                addr: addr_text,
                timeout: target.connect_timeout,
            }),
        }
    }

    async fn connect_inner(
        target: &Target,
        key: Arc<russh::keys::PrivateKey>,
        addr: &str,
    ) -> Result<Session, TransportError> {
        let node = target.name.clone();
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| TransportError::Connect {
                node: node.clone(),
                addr: addr.to_string(),
                source,
            })?;
        stream
            .set_nodelay(true)
            .map_err(|source| TransportError::Connect {
                node: node.clone(),
                addr: addr.to_string(),
                source,
            })?;
        let handler = Client {
            node: node.clone(),
            host: target.host.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            accept_new: target.accept_new_host_keys,
        };
        let mut handle = client::connect_stream(Arc::new(client_config()), stream, handler)
            .await
            .map_err(|e| match e {
                HandlerError::Refused(e) => *e,
                HandlerError::Ssh(source) => TransportError::Ssh {
                    node: node.clone(),
                    action: format!("handshaking with {addr}"),
                    source,
                },
            })?;

        let hash_alg = if key.algorithm().is_rsa() {
            // rsa-sha2-256/512 when the server lists them (OpenSSH does); never fall back to SHA-1.
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|source| TransportError::Ssh {
                    node: node.clone(),
                    action: "negotiating the RSA signature hash".into(),
                    source,
                })?
                .unwrap_or(Some(HashAlg::Sha256))
        } else {
            None
        };
        let auth = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(key, hash_alg),
            )
            .await
            .map_err(|source| TransportError::Ssh {
                node: node.clone(),
                action: "authenticating".into(),
                source,
            })?;
        match auth {
            AuthResult::Success => {}
            AuthResult::Failure { .. } => {
                let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
                return Err(TransportError::Auth {
                    node,
                    user: target.user.clone(),
                    key_file: target.identity_file.clone(),
                });
            }
        }
        Ok(Session {
            node,
            handle,
            command_timeout: target.command_timeout,
        })
    }

    /// The node this session talks to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Run `command` (through the user's login shell, as ssh does) with `stdin`, bounded by `command_timeout`.
    /// A non-zero exit is not an error: look at `Output::status`.
    pub async fn exec(&self, command: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        self.exec_with_timeout(command, stdin, self.command_timeout)
            .await
    }

    async fn exec_with_timeout(
        &self,
        command: &str,
        stdin: &[u8],
        limit: Duration,
    ) -> Result<Output, TransportError> {
        let deadline = Instant::now() + limit;
        let timed_out = || TransportError::CommandTimeout {
            node: self.node.clone(),
            command: first_line(command),
            timeout: limit,
        };
        let ssh_err = |action: &str, source: russh::Error| TransportError::Ssh {
            node: self.node.clone(),
            action: format!("{action} for `{}`", first_line(command)),
            source,
        };

        let channel = timeout_at(deadline, self.handle.channel_open_session())
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| ssh_err("opening a channel", e))?;
        let (mut reader, writer) = channel.split();
        timeout_at(deadline, writer.exec(true, command.as_bytes()))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| ssh_err("starting the command", e))?;

        // Feed stdin while reading output, so a command that writes before it reads cannot deadlock us.
        let feed = async {
            writer.data(stdin).await?;
            writer.eof().await
        };
        tokio::pin!(feed);
        let mut fed = false;
        let mut out = Output {
            status: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let mut status = None;
        let mut started = false;
        let sleep = sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                result = &mut feed, if !fed => {
                    fed = true;
                    // The command may exit without reading all of stdin; that is its business, not an error.
                    if let Err(e) = result {
                        if !started {
                            return Err(ssh_err("sending stdin", e));
                        }
                    }
                }
                msg = reader.wait() => match msg {
                    Some(ChannelMsg::Success) => started = true,
                    Some(ChannelMsg::Failure) => {
                        return Err(TransportError::Protocol {
                            node: self.node.clone(),
                            message: format!("the server refused to run `{}`", first_line(command)),
                        });
                    }
                    Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.stderr.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, .. }) => {
                        let name = match signal_name {
                            Sig::Custom(name) => name,
                            other => format!("{other:?}"),
                        };
                        let core = if core_dumped { " (core dumped)" } else { "" };
                        let detail = if error_message.is_empty() { String::new() } else { format!(": {error_message}") };
                        out.stderr.extend_from_slice(format!("\n[netctl: killed by signal {name}{core}{detail}]\n").as_bytes());
                        status = Some(255);
                    }
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                },
                _ = &mut sleep => {
                    // Best effort: ask sshd to stop the command, then close the channel.
                    let _ = timeout(Duration::from_millis(200), async {
                        let _ = writer.signal(Sig::KILL).await;
                        let _ = writer.close().await;
                    })
                    .await;
                    return Err(timed_out());
                }
            }
        }
        match status {
            Some(status) => {
                out.status = status;
                Ok(out)
            }
            None => Err(TransportError::Protocol {
                node: self.node.clone(),
                message: format!(
                    "channel for `{}` closed without an exit status (connection lost?)",
                    first_line(command)
                ),
            }),
        }
    }

    /// Replace files atomically, in one remote shell; see `upload.rs` for the script.
    /// When `backup_dir` is set, an existing file at `path` is first copied (cp -a) to `backup_dir` + `path`.
    /// If a file fails, no rename after it happens and the error names its path.
    pub async fn upload(
        &self,
        files: &[Upload],
        backup_dir: Option<&str>,
    ) -> Result<(), TransportError> {
        if files.is_empty() {
            return Ok(());
        }
        let script = upload::build_script(files, backup_dir).map_err(|(path, reason)| {
            TransportError::InvalidUpload {
                node: self.node.clone(),
                path,
                reason,
            }
        })?;
        let out = self.exec("sh -s", script.as_bytes()).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status == 0 && stdout.lines().any(|l| l == upload::OK_MARKER) {
            return Ok(());
        }
        if let Some((index, step, detail)) = upload::parse_failure(&out.stderr) {
            if let Some(file) = files.get(index) {
                return Err(TransportError::UploadFailed {
                    node: self.node.clone(),
                    path: file.path.clone(),
                    step,
                    detail,
                });
            }
        }
        Err(TransportError::UploadScript {
            node: self.node.clone(),
            status: out.status,
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Say goodbye to the server and wait (briefly) for the connection to end.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        let _ = timeout(Duration::from_secs(2), self.handle).await;
    }
}

/// The first line of a command, shortened, for error messages.
fn first_line(command: &str) -> String {
    let line = command.lines().next().unwrap_or("").trim();
    let mut short: String = line.chars().take(80).collect();
    if short.len() < line.len() || command.trim_end().contains('\n') {
        short.push_str(" ...");
    }
    short
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn first_line_is_short() {
        assert_eq!(first_line("sleep 5"), "sleep 5");
        assert_eq!(first_line("set -e\necho hi\n"), "set -e ...");
        assert_eq!(
            first_line(&"x".repeat(100)),
            format!("{} ...", "x".repeat(80))
        );
    }
}
