//! The russh client: connect (TCP, handshake, host key check, public-key auth) and exec over channels.
//!
//! One `Session` is one SSH connection. Each exec opens its own session channel on it, so many execs can run
//! at once from several tasks (`&self`), bounded only by the server's MaxSessions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::converse::Conversation;
use super::known_hosts;
use super::sudo::{self, Mode};
use super::{auth, proxy, secrets, upload};
use super::{Output, Target, TransportError, Upload};

/// An open, authenticated SSH connection to one node.
pub struct Session {
    node: String,
    handle: Handle<Client>,
    command_timeout: Duration,
    /// How scripts become root (see sudo.rs).
    sudo: Mode,
    /// Remote executions so far (each a channel and a process tree on the node): the benchmark's count.
    execs: std::sync::atomic::AtomicUsize,
}

/// Handler for the russh client: checks the server key against known_hosts.
pub(crate) struct Client {
    node: String,
    host: String,
    port: u16,
    known_hosts: PathBuf,
    global_known_hosts: Vec<PathBuf>,
    accept_new: bool,
}

/// Errors out of the handler: either russh's, or our own refusal carried through the handshake.
#[derive(Debug)]
pub(crate) enum HandlerError {
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
        let policy = known_hosts::Policy {
            node: &self.node,
            host: &self.host,
            port: self.port,
            user_file: &self.known_hosts,
            global_files: &self.global_known_hosts,
            accept_new: self.accept_new,
        };
        match known_hosts::verify(&policy, &server_key.public_key()) {
            Ok(()) => Ok(true),
            Err(e) => Err(HandlerError::Refused(Box::new(e))),
        }
    }
}

fn client_config() -> client::Config {
    client::Config {
        // Without it every channel round trip waits on Nagle + delayed ACK (about 45 ms, see LAB-NOTES.md).
        nodelay: true,
        // A node that stops answering (a reboot, a port gone dark) is noticed in about 12 s, not
        // after a minute: a switch then waits for it (bounded) instead of hanging on it.
        keepalive_interval: Some(Duration::from_secs(3)),
        keepalive_max: 3,
        inactivity_timeout: None,
        // Default algorithms: curve25519, ed25519, chacha20-poly1305 against OpenSSH: fast and secure.
        ..Default::default()
    }
}

/// Connect (directly, or through the target's bastion), check the host key and authenticate.
/// `connect_timeout` bounds all of it.
pub(crate) async fn open(target: &Target) -> Result<Handle<Client>, TransportError> {
    // Key files are local: read them first so a bad key is reported even when the node is down.
    let keys = auth::load_files(target)?;
    let addr = target.addr();
    let connect = async {
        let mut handle = match (&target.jump, &target.proxy_command) {
            (None, Some(command)) => {
                let proxy_err = |message: String| TransportError::Proxy {
                    node: target.name.clone(),
                    command: command.clone(),
                    message,
                };
                let (stream, stderr) =
                    proxy::spawn(command).map_err(|e| proxy_err(format!("cannot start: {e}")))?;
                match handshake(target, stream).await {
                    Ok(h) => h,
                    // Host key refusals stay what they are (exit 3); the rest is the command's.
                    Err(TransportError::Ssh { source, .. }) => {
                        return Err(proxy_err(match stderr.text() {
                            s if s.is_empty() => format!("SSH handshake failed: {source}"),
                            s => format!("SSH handshake failed: {source}; the command said: {s}"),
                        }))
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, None) => {
                let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                    .await
                    .and_then(|s| s.set_nodelay(true).map(|()| s))
                    .map_err(|source| TransportError::Connect {
                        node: target.name.clone(),
                        addr: addr.clone(),
                        source,
                    })?;
                handshake(target, stream).await?
            }
            (Some(bastion), _) => {
                let via = target.bastions.connection(&target.name, bastion).await?;
                // The originator fields are informational for the bastion's sshd (it logs them).
                let channel = via
                    .channel_open_direct_tcpip(
                        target.host.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|source| TransportError::Tunnel {
                        node: target.name.clone(),
                        bastion: bastion.addr(),
                        addr: addr.clone(),
                        source,
                    })?;
                handshake(target, channel.into_stream()).await?
            }
        };
        auth::authenticate(&mut handle, target, &keys).await?;
        Ok(handle)
    };
    match timeout(target.connect_timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::ConnectTimeout {
            node: target.name.clone(),
            addr,
            timeout: target.connect_timeout,
        }),
    }
}

async fn handshake<R>(target: &Target, stream: R) -> Result<Handle<Client>, TransportError>
where
    R: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = Client {
        node: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        known_hosts: target.known_hosts.clone(),
        global_known_hosts: target.global_known_hosts.clone(),
        accept_new: target.accept_new_host_keys,
    };
    client::connect_stream(Arc::new(client_config()), stream, handler)
        .await
        .map_err(|e| match e {
            HandlerError::Refused(e) => *e,
            HandlerError::Ssh(source) => TransportError::Ssh {
                node: target.name.clone(),
                action: format!("handshaking with {}", target.addr()),
                source,
            },
        })
}

impl Session {
    /// Remote executions on this session so far.
    pub fn executions(&self) -> usize {
        self.execs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connect, check the host key, authenticate (key files, then agent keys), and with `target.sudo`
    /// find out how to become root (passwordless, or with the password, checked here once).
    pub async fn connect(target: &Target) -> Result<Session, TransportError> {
        let handle = open(target).await?;
        let mut session = Session {
            node: target.name.clone(),
            handle,
            command_timeout: target.command_timeout,
            sudo: Mode::Direct,
            execs: std::sync::atomic::AtomicUsize::new(0),
        };
        if target.sudo {
            session.sudo = session.sudo_mode(&target.user).await?;
        }
        Ok(session)
    }

    async fn sudo_mode(&self, user: &str) -> Result<Mode, TransportError> {
        let probe = self.exec(sudo::PROBE, b"").await?;
        if probe.success() {
            return Ok(Mode::NoPassword);
        }
        let sudo_err = |message: String| TransportError::Sudo {
            node: self.node.clone(),
            message,
        };
        let said = sudo_said(&probe.stderr);
        if probe.status == 127 {
            return Err(sudo_err(format!("sudo is not installed ({said})")));
        }
        let password = secrets::sudo_password().map_err(|e| {
            sudo_err(format!(
                "user {user} needs a password for sudo ({said}); {e}"
            ))
        })?;
        sudo::check_password(&password).map_err(sudo_err)?;
        let check = self
            .exec(sudo::CHECK, format!("{password}\n").as_bytes())
            .await?;
        if !check.success() {
            return Err(sudo_err(format!(
                "the sudo password was refused for user {user} ({})",
                sudo_said(&check.stderr)
            )));
        }
        Ok(Mode::Password(password))
    }

    /// Run a netctl script (a `sh` program on stdin) as root: directly, or through sudo.
    pub async fn run_script(&self, script: &[u8]) -> Result<Output, TransportError> {
        self.run_script_for(script, self.command_timeout).await
    }

    /// `run_script` bounded by `limit` instead of ssh.commandTimeout (for commands with their own,
    /// longer timeouts, such as `kubectl wait`).
    pub async fn run_script_for(
        &self,
        script: &[u8],
        limit: Duration,
    ) -> Result<Output, TransportError> {
        let (command, stdin) = sudo::wrap(&self.sudo, script);
        let out = self
            .exec_with_timeout(&command, &stdin, limit.max(self.command_timeout))
            .await?;
        if sudo::password_not_asked(&self.sudo, &out) {
            return Err(sudo::not_asked(&self.node));
        }
        Ok(out)
    }

    /// Start `script` as root (as `run_script` does) and keep its channel: the script goes on
    /// reading stdin and answering on stdout (see converse.rs). `limit` bounds the start.
    pub async fn converse(
        &self,
        what: &str,
        script: &[u8],
        limit: Duration,
    ) -> Result<Conversation, TransportError> {
        let (command, stdin) = sudo::wrap(&self.sudo, script);
        let channel = self
            .open_channel(what, what, Instant::now() + limit, limit)
            .await?;
        Conversation::start(
            &self.node, what, &self.sudo, channel, &command, &stdin, limit,
        )
        .await
    }

    /// A new channel for an execution (counted), by `deadline`; errors name the command as
    /// `named` (the timeout's) and `shown` (the SSH error's).
    async fn open_channel(
        &self,
        named: &str,
        shown: &str,
        deadline: Instant,
        limit: Duration,
    ) -> Result<russh::Channel<client::Msg>, TransportError> {
        self.execs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        timeout_at(deadline, self.handle.channel_open_session())
            .await
            .map_err(|_| TransportError::CommandTimeout {
                node: self.node.clone(),
                command: named.to_string(),
                timeout: limit,
            })?
            .map_err(|e| TransportError::Ssh {
                node: self.node.clone(),
                action: format!("opening a channel for {shown}"),
                source: e,
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

        let channel = self
            .open_channel(
                &first_line(command),
                &format!("`{}`", first_line(command)),
                deadline,
                limit,
            )
            .await?;
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
        let out = self.run_script(script.as_bytes()).await?;
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

/// sudo's complaint without its noise (a node whose hostname does not resolve, the retry prompt).
fn sudo_said(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.contains("unable to resolve host") && *l != "Sorry, try again."
        })
        .collect::<Vec<_>>()
        .join("; ")
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
