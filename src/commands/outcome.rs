//! What a command returns, rendered once (ripgrep's `run()` returns the code; here it returns
//! the whole outcome): a JSON body, the lines a person reads on stdout, and how it ended.
//!
//! As text: the lines on stdout (results left out with `-q`, problems always), and a failure
//! as one line `pi-burn: <why>` on stderr. As JSON (`--json`): one object on stdout, for every
//! command, success or failure, usage errors included: `{...body, "error": null | "<why>",
//! "exit_code": N}`, where `exit_code` is the exit status.

use crate::error::{exit_of, Exit, Mismatch};
use anyhow::Result;
use serde_json::{Map, Value};

/// One line of text output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// What the command did or found (left out with `-q`).
    Result(String),
    /// A difference or refusal the user must see (printed with `-q` too).
    Problem(String),
}

/// A command's outcome: its body, its text, and its failure, if any.
#[derive(Debug, Default)]
pub struct Outcome {
    pub body: Map<String, Value>,
    pub lines: Vec<Line>,
    pub error: Option<anyhow::Error>,
}

impl Outcome {
    /// An outcome whose body is `body` (a value that serialises to a JSON object).
    pub fn of(body: &impl serde::Serialize) -> Result<Self> {
        match serde_json::to_value(body)? {
            Value::Object(body) => Ok(Outcome {
                body,
                ..Outcome::default()
            }),
            other => anyhow::bail!("internal: a command's body is not an object: {other}"),
        }
    }

    /// An outcome with an empty body.
    pub fn empty() -> Self {
        Outcome::default()
    }

    /// A failure with nothing else to say (`{"error", "exit_code"}`).
    pub fn failed(e: anyhow::Error) -> Self {
        Outcome {
            error: Some(e),
            ..Outcome::default()
        }
    }

    /// Adds a field to the body.
    pub fn field(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.body.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Adds a result line.
    pub fn line(mut self, s: impl Into<String>) -> Self {
        self.lines.push(Line::Result(s.into()));
        self
    }

    /// Adds result lines.
    pub fn lines(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.lines.extend(lines.into_iter().map(Line::Result));
        self
    }

    /// Adds problem lines (printed with `-q` too).
    pub fn problems(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.lines.extend(lines.into_iter().map(Line::Problem));
        self
    }

    /// Ends the outcome with `result`'s failure, if it is one.
    pub fn ending(mut self, result: Result<()>) -> Self {
        if let Err(e) = result {
            self.error = Some(e);
        }
        self
    }

    /// How the run ends: the failure's kind, or success; an interrupt wins.
    pub fn exit(&self) -> Exit {
        if crate::blockdev::sys::interrupted() && self.error.is_some() {
            return Exit::Interrupted;
        }
        self.error.as_ref().map_or(Exit::Success, exit_of)
    }

    /// The one JSON object of the run.
    pub fn json(&self) -> Value {
        let mut body = self.body.clone();
        body.insert(
            "error".into(),
            match &self.error {
                Some(e) => Value::String(format!("{e:#}")),
                None => Value::Null,
            },
        );
        body.insert("exit_code".into(), Value::from(self.exit().code()));
        Value::Object(body)
    }

    /// What the run prints: (stdout, stderr), as text or as the JSON object.
    pub fn render(&self, json: bool, quiet: bool) -> (String, String) {
        let mut err = String::new();
        if let Some(e) = &self.error {
            match e.downcast_ref::<Mismatch>() {
                // The differences are on stdout (as problem lines or in the object): the count.
                Some(m) if json || self.has_problems() => {
                    err = format!(
                        "pi-burn: verification failed: {}\n",
                        Mismatch::count(m.0.len())
                    )
                }
                _ => err = format!("pi-burn: {e:#}\n"),
            }
        }
        if json {
            let text = serde_json::to_string_pretty(&self.json())
                .unwrap_or_else(|e| format!("{{\"error\": \"internal: {e}\", \"exit_code\": 1}}"));
            return (format!("{text}\n"), err);
        }
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Result(s) if !quiet => {
                    out.push_str(s);
                    out.push('\n');
                }
                Line::Problem(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
                Line::Result(_) => {}
            }
        }
        (out, err)
    }

    fn has_problems(&self) -> bool {
        self.lines.iter().any(|l| matches!(l, Line::Problem(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{usage, Refused};

    #[test]
    fn every_outcome_is_one_object_with_error_and_exit_code() {
        let ok = Outcome::of(&serde_json::json!({"target": "x"}))
            .unwrap()
            .line("done");
        assert_eq!(
            ok.json(),
            serde_json::json!({"target": "x", "error": null, "exit_code": 0})
        );
        assert_eq!(ok.render(false, false), ("done\n".into(), String::new()));
        assert_eq!(ok.render(false, true), (String::new(), String::new()));
        let refused = Outcome::failed(Refused("refusing /dev/loop9: mounted".into()).into());
        assert_eq!(refused.json()["exit_code"], 4);
        assert_eq!(refused.exit(), Exit::Refused);
        let (_, err) = refused.render(false, false);
        assert_eq!(err, "pi-burn: refusing /dev/loop9: mounted\n");
        assert_eq!(Outcome::failed(usage("--size")).json()["exit_code"], 2);
    }

    #[test]
    fn differences_are_printed_once_with_q_too() {
        let o = Outcome::empty()
            .line("card: checked")
            .problems(["a.txt: missing".to_string()])
            .ending(Err(Mismatch(vec!["a.txt: missing".into()]).into()));
        let (out, err) = o.render(false, true);
        assert_eq!(out, "a.txt: missing\n");
        assert_eq!(err, "pi-burn: verification failed: 1 difference\n");
        assert_eq!(o.json()["exit_code"], 3);
        // Without problem lines, the error says them.
        let bare = Outcome::failed(Mismatch(vec!["x differs".into()]).into());
        assert!(bare.render(false, false).1.contains("x differs"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_an_error() {
        assert!(Outcome::of(&3).is_err());
    }
}
