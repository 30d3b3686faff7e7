//! `doctor`: which nodes, their configs evaluated (or the options read from `--options-json`),
//! checked against their media.

use crate::cli::DoctorArgs;
use crate::doctor::Diagnosis;
use anyhow::{bail, Context, Result};

pub struct DoctorJob {
    pub diagnoses: Vec<Diagnosis>,
    pub left_out: Vec<String>,
}

/// The largest --options-json read.
const MAX_OPTIONS: u64 = 4 << 20;

impl DoctorJob {
    pub fn from_args(a: &DoctorArgs) -> Result<Self> {
        let board = a.board.clone().unwrap_or_else(|| "rpi4".into());
        let manifest = crate::firmware::manifest::Manifest::load(a.manifest.as_deref())?;
        if a.options_json.is_some() && a.node.len() != 1 {
            bail!(crate::error::usage(
                "--options-json holds one node's options: give exactly one --node"
            ));
        }
        let eval = if a.options_json.is_some() {
            // The disko config from the file: no Nix here.
            crate::ssd::EvalMode::Builtin
        } else {
            crate::ssd::EvalMode::Auto
        };
        let mut m = super::nodes::members(&a.flake, &a.node, eval, &board)?;
        if let Some(path) = &a.options_json {
            let text = crate::util::read_text_limited(path, MAX_OPTIONS, "the options as JSON")?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let o = crate::ssd::options::Options::from_json(v, &path.display().to_string())?;
            for n in &mut m.nodes {
                n.options = Some(o.clone());
            }
        }
        let hosts = crate::ssd::config::nodes(&a.flake);
        let cluster = crate::cluster::Cluster::load(&a.flake, &hosts, &board)?;
        let diagnoses = m
            .nodes
            .iter()
            .map(|cfg| {
                crate::doctor::diagnose(
                    cfg,
                    &a.flake,
                    &cluster.for_node(&cfg.node),
                    &board,
                    "FIRMWARE",
                    &manifest,
                )
            })
            .collect();
        Ok(DoctorJob {
            diagnoses,
            left_out: m.left_out,
        })
    }
}
