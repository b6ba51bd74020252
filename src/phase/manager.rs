//! The one phase manager: a command is a visible list of phases, run in order; when one fails,
//! the phases that ran - the failed one first, since it may have done part of its work - are
//! undone newest first. Locks are not a phase: the fleet that holds them releases them after the
//! manager returns, on every path (commands/switch.rs).

use std::fmt::Debug;

/// One entry of a command's list: which phase, and what a person reads while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Phase<Id> {
    pub id: Id,
    pub title: &'static str,
}

/// How a phase that succeeded ends the list: go on, or stop here with success (a dry run after
/// planning, a switch with nothing to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Next,
    Stop,
}

/// A command's phases over its own state. `undo` must accept a phase that did part of its work
/// (it is called for the phase that failed too) and returns what it could not undo.
#[allow(async_fn_in_trait)] // run on the command's own task: no Send bound wanted
pub trait Phases {
    type Id: Copy + Debug + PartialEq;
    type Error;
    async fn run(&mut self, id: Self::Id) -> Result<Flow, Self::Error>;
    async fn undo(&mut self, id: Self::Id) -> Vec<String>;
}

/// What the manager did.
#[derive(Debug)]
pub struct Outcome<Id, E> {
    /// Phases that ran to the end, in order.
    pub completed: Vec<Id>,
    /// The phase that failed, and why.
    pub failed: Option<(Id, E)>,
    /// Phases undone after the failure, in the order undone.
    pub undone: Vec<Id>,
    /// What the undos could not put back.
    pub undo_errors: Vec<String>,
}

/// Run `list` in order over `p`. With `undo` false (switch --no-rollback) a failure leaves
/// everything in place for a later resume or rollback.
pub async fn run<P: Phases>(
    p: &mut P,
    list: &[Phase<P::Id>],
    undo: bool,
) -> Outcome<P::Id, P::Error> {
    let mut out = Outcome {
        completed: vec![],
        failed: None,
        undone: vec![],
        undo_errors: vec![],
    };
    for phase in list {
        match p.run(phase.id).await {
            Ok(Flow::Next) => out.completed.push(phase.id),
            Ok(Flow::Stop) => {
                out.completed.push(phase.id);
                return out;
            }
            Err(e) => {
                out.failed = Some((phase.id, e));
                break;
            }
        }
    }
    if let (Some((failed, _)), true) = (&out.failed, undo) {
        let failed = *failed;
        for id in std::iter::once(failed).chain(out.completed.iter().rev().copied()) {
            out.undo_errors.extend(p.undo(id).await);
            out.undone.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log {
        fail_at: Option<u8>,
        stop_at: Option<u8>,
        undo_fails: Option<u8>,
        log: Vec<String>,
    }

    impl Phases for Log {
        type Id = u8;
        type Error = String;
        async fn run(&mut self, id: u8) -> Result<Flow, String> {
            self.log.push(format!("run {id}"));
            if self.fail_at == Some(id) {
                return Err(format!("{id} broke"));
            }
            Ok(if self.stop_at == Some(id) {
                Flow::Stop
            } else {
                Flow::Next
            })
        }
        async fn undo(&mut self, id: u8) -> Vec<String> {
            self.log.push(format!("undo {id}"));
            if self.undo_fails == Some(id) {
                vec![format!("{id} stays")]
            } else {
                vec![]
            }
        }
    }

    const LIST: &[Phase<u8>] = &[
        Phase {
            id: 1,
            title: "one",
        },
        Phase {
            id: 2,
            title: "two",
        },
        Phase {
            id: 3,
            title: "three",
        },
        Phase {
            id: 4,
            title: "four",
        },
    ];

    #[tokio::test]
    async fn all_phases_run_in_order_and_nothing_is_undone() {
        let mut l = Log::default();
        let o = run(&mut l, LIST, true).await;
        assert_eq!(o.completed, [1, 2, 3, 4]);
        assert!(o.failed.is_none() && o.undone.is_empty());
        assert_eq!(l.log, ["run 1", "run 2", "run 3", "run 4"]);
    }

    #[tokio::test]
    async fn a_failure_undoes_the_failed_phase_then_the_rest_newest_first() {
        let mut l = Log {
            fail_at: Some(3),
            undo_fails: Some(1),
            ..Log::default()
        };
        let o = run(&mut l, LIST, true).await;
        assert_eq!(o.completed, [1, 2]);
        assert_eq!(o.failed.as_ref().map(|f| f.0), Some(3));
        assert_eq!(o.undone, [3, 2, 1]);
        assert_eq!(o.undo_errors, ["1 stays"]);
        assert_eq!(
            l.log,
            ["run 1", "run 2", "run 3", "undo 3", "undo 2", "undo 1"]
        );
    }

    #[tokio::test]
    async fn without_undo_a_failure_leaves_everything_in_place() {
        let mut l = Log {
            fail_at: Some(2),
            ..Log::default()
        };
        let o = run(&mut l, LIST, false).await;
        assert!(o.undone.is_empty());
        assert_eq!(l.log, ["run 1", "run 2"]);
    }

    #[tokio::test]
    async fn stop_ends_the_list_with_success() {
        let mut l = Log {
            stop_at: Some(2),
            ..Log::default()
        };
        let o = run(&mut l, LIST, true).await;
        assert_eq!(o.completed, [1, 2]);
        assert!(o.failed.is_none());
        assert_eq!(l.log, ["run 1", "run 2"]);
    }
}
