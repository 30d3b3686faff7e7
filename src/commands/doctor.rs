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
        lines_of(vec![format!(
            "{}: {}",
            d.node,
            match (errors, d.findings.len() - errors) {
                (0, 0) => "ok".to_string(),
                (0, w) => format!("ok, {w} warning{}", if w == 1 { "" } else { "s" }),
                (e, w) => format!(
                    "{e} error{}, {w} warning{}",
                    if e == 1 { "" } else { "s" },
                    if w == 1 { "" } else { "s" }
                ),
            }
        )]);
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
    let mut o = Outcome::of(&serde_json::json!({
        "nodes": job.diagnoses,
        "left_out": job.left_out,
    }))?;
    o.lines = lines;
    Ok(if failing.is_empty() {
        o
    } else {
        o.ending(Err(crate::error::Found(format!(
            "{}: the NixOS config does not fit the media pi-burn makes (errors above)",
            failing.join(", ")
        ))
        .into()))
    })
}
