//! The kinds of failure that choose pi-burn's exit code, in one place. Everything else is an
//! ordinary error (exit 1) carried by anyhow with its context chain.
//!
//! | code | kind |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | [`UsageError`]: a wrong command line |
//! | 3 | [`Mismatch`]: verification found a difference; [`Found`]: a check found what it looks for (a counterfeit) |
//! | 4 | [`Refused`]: a safety check refused the device |

use thiserror::Error;

/// A wrong command line found after parsing (exit code 2).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// One or more differences between what was written and what should be there (exit code 3).
#[derive(Debug, Error)]
#[error("verification failed: {}: {}", Mismatch::count(.0.len()), .0.join("; "))]
pub struct Mismatch(pub Vec<String>);

impl Mismatch {
    /// "1 difference", "3 differences".
    pub fn count(n: usize) -> String {
        format!("{n} difference{}", if n == 1 { "" } else { "s" })
    }
}

/// A check that found what it looks for, as one line (exit code 3): `probe` finding a
/// counterfeit.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Found(pub String);

/// A refusal by a safety check (exit code 4).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A zip whose hash is not the pinned one: a mismatch for `firmware verify`, a failure
/// elsewhere.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct HashMismatch(pub String);

/// The command already printed this outcome as its `--json` object (with the error in it):
/// nothing more goes to stdout. Wraps the error, whose kind still picks the exit code.
#[derive(Debug, Error)]
#[error("{0:#}")]
pub struct Reported(pub anyhow::Error);

impl Reported {
    /// The error's fields for a JSON outcome: `error` and `exit_code`.
    pub fn fields(e: &anyhow::Error) -> (String, u8) {
        (format!("{e:#}"), exit_code(e))
    }
}

/// An error with what to do about it after it (the error's own chain stays whole inside).
#[derive(Debug, Error)]
#[error("{inner:#}; {hint}")]
pub struct Hinted {
    pub inner: anyhow::Error,
    pub hint: String,
}

/// A usage error from a message.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit code for an error: the first kind found in its chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(Reported(inner)) = e.downcast_ref::<Reported>() {
        return exit_code(inner);
    }
    if let Some(Hinted { inner, .. }) = e.downcast_ref::<Hinted>() {
        return exit_code(inner);
    }
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return 2;
        }
        if cause.is::<Mismatch>() || cause.is::<Found>() {
            return 3;
        }
        if cause.is::<Refused>() {
            return 4;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_survive_context() {
        let e = Err::<(), _>(Refused("busy".into()))
            .context("opening /dev/loop9")
            .unwrap_err();
        assert_eq!(exit_code(&e), 4);
        assert_eq!(exit_code(&usage("--size")), 2);
        assert_eq!(exit_code(&Mismatch(vec!["x".into()]).into()), 3);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
        assert_eq!(exit_code(&HashMismatch("h".into()).into()), 1);
    }
}
