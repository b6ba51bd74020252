//! A command on a real pseudo-terminal (util-linux `script`), driven like a person at it: wait for
//! a prompt on the screen, then type. Password prompts (dialoguer) flush what was typed before
//! they switch echo off, so typing ahead is not an option; an answer not taken is typed again.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    child: Child,
    stdin: ChildStdin,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    /// Start `cmd` (a shell command line) on a terminal, in `dir`, with `env` added. It is
    /// killed after `limit_s` seconds (timeout --foreground keeps it in the terminal's foreground
    /// group, where it may switch echo off without being stopped).
    pub fn start(cmd: &str, dir: &Path, env: &[(&str, &str)], limit_s: u32) -> Pty {
        let line = format!("timeout --foreground -s KILL {limit_s} {cmd}");
        let mut c = Command::new("script");
        c.args(["-qfec", &line, "/dev/null"])
            .current_dir(dir)
            .env("NETCTL_NO_PROGRESS", "1")
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("script (bsdutils) is installed");
        let stdin = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let s2 = screen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            stdin,
            screen,
            reader: Some(reader),
        }
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn count(&self, text: &str) -> usize {
        self.screen().matches(text).count()
    }

    /// Wait until `text` has appeared `n` times on the screen.
    pub fn wait_for(&self, text: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(text) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// At `prompt`, type `answer` until the screen moves on (shows `next`, or the command ends).
    /// Returns how many times it was typed: more than once means the first was typed before the
    /// prompt read (and the terminal, still echoing then, showed it).
    pub fn answer(&mut self, prompt: &str, answer: &str, next: &str) -> usize {
        assert!(
            self.wait_for(prompt, 1, Duration::from_secs(60)),
            "no prompt {prompt:?}:\n{}",
            self.screen()
        );
        for typed in 1..=5 {
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.stdin.write_all(format!("{answer}\r").as_bytes());
            let _ = self.stdin.flush();
            if self.wait_for(next, 1, Duration::from_secs(3)) || self.ended() {
                return typed;
            }
        }
        panic!("{prompt:?} did not take the answer:\n{}", self.screen());
    }

    /// Type `lines` one at a time, as a person would, without waiting for prompts: for prompts
    /// that read what was typed ahead (dialoguer's Input). The command may end before the last.
    pub fn type_lines(&mut self, lines: &[&str]) {
        for l in lines {
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.stdin.write_all(format!("{l}\r").as_bytes());
            let _ = self.stdin.flush();
        }
    }

    fn ended(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Wait for the end; the exit status and everything the terminal showed.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.screen())
    }
}
