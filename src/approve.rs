//! The one approval rule for every command that changes nodes (init, reset, switch, unlock), as
//! Terraform and kops have it: what will change is printed first, then the question, with the
//! progress lines stopped so that nothing draws over it. Nothing changes without an explicit yes:
//! with no terminal to ask on, `--yes` is needed (exit 2, checked before any node is reached); a
//! "no" exits 1 with nothing changed.

use crate::printer::{escape_controls, Progress};
use crate::Error;

/// What a "no" ends with (exit 1): the command stopped before its first change.
pub const DECLINED: &str = "not confirmed; nothing was changed";

/// A person can answer a question: stdin (the answer) and stderr (the question) are terminals.
pub fn can_ask() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The refusal of a run that changes nodes with nobody to ask and no `--yes`.
pub fn no_terminal(command: &str) -> Error {
    Error::Usage(format!(
        "{command} changes nodes and there is no terminal to ask: pass --yes"
    ))
}

/// The error a "no" ends with.
pub fn declined() -> Error {
    Error::Failed(DECLINED.into())
}

/// Checked before a command that changes nodes reaches any: without `--yes` a terminal to ask on
/// is needed, so a run in a pipe or a CI step refuses before it locks anything.
pub fn require(command: &str, yes: bool) -> Result<(), Error> {
    require_with(can_ask(), command, yes)
}

fn require_with(can_ask: bool, command: &str, yes: bool) -> Result<(), Error> {
    if yes || can_ask {
        Ok(())
    } else {
        Err(no_terminal(command))
    }
}

/// Print `summary` (what will change, one line per item; node text is escaped here), then ask
/// `question`, with `progress`'s lines hidden until the answer. `yes` (`--yes`) approves without
/// either. Ok only on an explicit yes.
pub fn approve(
    command: &str,
    yes: bool,
    summary: &str,
    question: &str,
    progress: Option<&Progress>,
) -> Result<(), Error> {
    require(command, yes)?;
    if yes {
        return Ok(());
    }
    let ask = || {
        let mut summary = escape_controls(summary);
        if !summary.is_empty() && !summary.ends_with('\n') {
            summary.push('\n');
        }
        eprint!("{summary}");
        dialoguer::Confirm::new()
            .with_prompt(escape_controls(question))
            .default(false)
            .interact()
    };
    let answer = match progress {
        Some(p) => p.suspend(ask),
        None => ask(),
    };
    decide(answer)
}

/// The answer as the command's way on: only a yes goes on; Ctrl-C ends as an interrupted command.
fn decide(answer: Result<bool, dialoguer::Error>) -> Result<(), Error> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(declined()),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => Err(
            Error::Interrupted("interrupted (Ctrl-C); nothing was changed".into()),
        ),
        Err(e) => Err(Error::Failed(format!(
            "the question could not be asked ({e}); nothing was changed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_goes_on() {
        assert!(decide(Ok(true)).is_ok());
        let no = decide(Ok(false)).unwrap_err();
        assert_eq!(no.exit_code(), 1);
        assert_eq!(no.to_string(), DECLINED);
        let ctrl_c = std::io::Error::new(std::io::ErrorKind::Interrupted, "read interrupted");
        let e = decide(Err(dialoguer::Error::IO(ctrl_c))).unwrap_err();
        assert_eq!(e.exit_code(), 130);
        let closed = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let e = decide(Err(dialoguer::Error::IO(closed))).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("nothing was changed"), "{e}");
    }

    #[test]
    fn without_a_terminal_a_change_needs_yes() {
        assert!(require_with(false, "reset", true).is_ok());
        assert!(require_with(true, "reset", false).is_ok());
        let e = require_with(false, "reset", false).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "reset changes nodes and there is no terminal to ask: pass --yes"
        );
    }
}
