//! Fault points: where the lab's fault matrix (tests/switch_faults.rs) kills netctl.
//!
//! `NETCTL_FAULT=POINT[@N]` makes netctl SIGKILL itself the N-th time (default the first) it
//! reaches POINT. A SIGKILL is what the matrix must survive: no destructor, no drop of a lock,
//! no last word to a node; only what is already on the nodes is left. Without the variable a
//! point is a counter increment and nothing else.
//!
//! The points (docs/switch.md, "Recovery"): `prepare` (after a node's prepare step), `wave` (a
//! node switched, before its gate), `gate` (a node's gate with its test pods up), `between-waves`,
//! `last-gate` (the last gate's test pods up), `cleanup` (after a node's cleanup), `finish` (after
//! a node's record is dropped), `rollback` (in a node's rollback: files restored, the old
//! provider's commands not yet re-run).

use std::collections::HashMap;
use std::sync::Mutex;

/// The variable's value parsed: the point and which arrival kills.
fn wanted() -> Option<(String, u32)> {
    let v = std::env::var("NETCTL_FAULT").ok()?;
    parse(&v)
}

fn parse(v: &str) -> Option<(String, u32)> {
    let (point, n) = match v.split_once('@') {
        Some((p, n)) => (p, n.parse().ok()?),
        None => (v, 1),
    };
    (!point.is_empty() && n >= 1).then(|| (point.to_string(), n))
}

/// Count an arrival at `name`; the one the variable names kills this process.
pub fn point(name: &str) {
    static SEEN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    let Some((want, nth)) = wanted() else {
        return;
    };
    if want != name {
        return;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let n = seen
        .get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_insert(0);
    *n += 1;
    if *n == nth {
        eprintln!("netctl: fault point {name} reached ({nth}): SIGKILL");
        // SAFETY: kill(2) on our own pid with a constant signal; no memory is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_point_and_its_arrival() {
        assert_eq!(parse("wave"), Some(("wave".into(), 1)));
        assert_eq!(parse("wave@3"), Some(("wave".into(), 3)));
        assert_eq!(parse("wave@0"), None);
        assert_eq!(parse("wave@x"), None);
        assert_eq!(parse(""), None);
    }
}
