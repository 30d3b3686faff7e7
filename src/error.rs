//! The kinds of failure that choose pi-burn's exit code, in one place: one code per fact.
//! Everything else is an ordinary failure (exit 1) carried by anyhow with its context chain.
//!
//! | code | [`Exit`] | the fact |
//! |---|---|---|
//! | 0 | `Success` | the command did what it was asked |
//! | 1 | `Failure` | it could not (a file, the network, a device's I/O, a config it cannot use) |
//! | 2 | [`UsageError`] | the command line, or a setting it names, is wrong |
//! | 3 | [`Mismatch`], [`Found`] | a check found that a card, image, zip or device is not what it should be (a difference, a damaged card, a counterfeit) |
//! | 4 | [`Refused`] | a safety rule refused the device or path before anything was written |
//! | 130 | `Interrupted` | Ctrl-C or SIGTERM |

use thiserror::Error;

/// How a run ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Success,
    Failure,
    Usage,
    Mismatch,
    Refused,
    Interrupted,
}

impl Exit {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Mismatch => 3,
            Exit::Refused => 4,
            Exit::Interrupted => 130,
        }
    }
}

/// A wrong command line found after parsing (exit code 2).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// One or more differences between what a card, image, zip or device is and what it should
/// be (exit code 3). Each is one line.
#[derive(Debug, Error)]
#[error("verification failed: {}: {}", Mismatch::count(.0.len()), .0.join("; "))]
pub struct Mismatch(pub Vec<String>);

impl Mismatch {
    /// "1 difference", "3 differences".
    pub fn count(n: usize) -> String {
        format!("{n} difference{}", if n == 1 { "" } else { "s" })
    }
}

/// A check that found what it looks for, as one line (exit code 3, as a [`Mismatch`]): a
/// counterfeit device, a card that cannot be read.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Found(pub String);

/// A refusal by a safety check (exit code 4).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A zip whose hash is not the pinned one: a failure to use it (exit 1); `firmware verify`,
/// whose question it answers, reports it as a [`Mismatch`].
#[derive(Debug, Error)]
#[error("{0}")]
pub struct HashMismatch(pub String);

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

/// How an error ends the run: the first kind found in its chain.
pub fn exit_of(e: &anyhow::Error) -> Exit {
    if let Some(Hinted { inner, .. }) = e.downcast_ref::<Hinted>() {
        return exit_of(inner);
    }
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return Exit::Usage;
        }
        if cause.is::<Mismatch>() || cause.is::<Found>() {
            return Exit::Mismatch;
        }
        if cause.is::<Refused>() {
            return Exit::Refused;
        }
    }
    Exit::Failure
}

/// The exit code for an error (see [`exit_of`]).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    exit_of(e).code()
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
        let hinted: anyhow::Error = Hinted {
            inner: usage("x"),
            hint: "y".into(),
        }
        .into();
        assert_eq!(exit_code(&hinted), 2);
    }
}
