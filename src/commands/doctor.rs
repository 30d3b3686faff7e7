//! `pi-burn doctor`: each node's NixOS config against its media, and the install that keeps them.

use super::{Global, Outcome};
use crate::cli::DoctorArgs;
use crate::job::doctor::DoctorJob;
use anyhow::Result;

pub fn run(a: &DoctorArgs, g: &Global) -> Result<Outcome> {
    let job = DoctorJob::from_args(a)?;
    for l in &job.left_out {
        g.progress().notice(&format!("left out: {l}"));
    }
    use super::Line;
    let mut lines = vec![];
    for d in &job.diagnoses {
        let errors = d.errors().count();
        // Errors are what fails the run: shown with -q too.
        for (f, l) in d.findings.iter().zip(d.lines()) {
            lines.push(if f.level == crate::doctor::Level::Error {
                Line::Problem(l)
            } else {
                Line::Result(l)
            });
        }
        let mut lines_of = |v: Vec<String>| lines.extend(v.into_iter().map(Line::Result));
        lines_of(
            d.unchecked
                .iter()
                .map(|u| format!("{}: unchecked: {u}", d.node))
                .collect(),
        );
        lines_of(vec![format!("{}: {}", d.node, summary(d, errors))]);
        lines_of(
            d.install
                .lines()
                .into_iter()
                .map(|l| format!("{}: {l}", d.node))
                .collect(),
        );
    }
    let failing: Vec<String> = job
        .diagnoses
        .iter()
        .filter(|d| d.errors().next().is_some())
        .map(|d| d.node.clone())
        .collect();
    // A node whose config could not be evaluated was not checked at all: the run did not do
    // its job (exit 1), unless a checked node's error (exit 3) says more.
    let not_evaluated: Vec<String> = job
        .diagnoses
        .iter()
        .filter(|d| d.options.is_none())
        .map(|d| d.node.clone())
        .collect();
    let mut o = Outcome::of(&serde_json::json!({
        "nodes": job.diagnoses,
        "left_out": job.left_out,
    }))?;
    o.lines = lines;
    Ok(if failing.is_empty() {
        if not_evaluated.is_empty() {
            o
        } else {
            o.ending(Err(anyhow::anyhow!(
                "{}: the NixOS config could not be evaluated, so it was not checked (unchecked above)",
                not_evaluated.join(", ")
            )))
        }
    } else {
        o.ending(Err(crate::error::Found(format!(
            "{}: the NixOS config does not fit the media pi-burn makes (errors above)",
            failing.join(", ")
        ))
        .into()))
    })
}

/// The node's last line: what was found, and never "ok" beyond what was checked.
fn summary(d: &crate::doctor::Diagnosis, errors: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if d.options.is_none() {
        return "not checked (its NixOS config was not evaluated)".to_string();
    }
    let warnings = d.findings.len() - errors;
    let mut s = match (errors, warnings) {
        (0, 0) => "ok".to_string(),
        (0, w) => format!("ok, {}", plural(w, "warning")),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    };
    if !d.unchecked.is_empty() {
        s.push_str(&format!("; {} unchecked (above)", d.unchecked.len()));
    }
    s
}
