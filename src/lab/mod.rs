//! The local lab: real sshd (and systemd) nodes on one machine. See docs/lab.md.
