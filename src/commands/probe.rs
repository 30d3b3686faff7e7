//! `pi-burn probe DEVICE`: does the device hold what it claims?

use super::prompt::{confirm, describe};
use super::{Global, Outcome};
use crate::cli::ProbeArgs;
use crate::error::Found;
use crate::job::probe::ProbeJob;
use crate::util::units::human;
use crate::write::probe::{honest_cost, Verdict};
use anyhow::{bail, Result};

pub fn run(a: &ProbeArgs, g: &Global) -> Result<Outcome> {
    let job = ProbeJob::from_args(a);
    let claimed = job.claim()?;
    let d = &claimed.disk().info;
    let (w, r) = honest_cost(d.size, d.logical_sector_size);
    if w == 0 {
        bail!(
            "{}: too small to probe ({}, the probe needs 32 MiB)",
            claimed.disk().path().display(),
            human(d.size)
        );
    }
    if !g.quiet || !job.yes {
        eprint!("{}", describe(&claimed));
        eprintln!(
            "will probe:  at most {} read and {} written (every block it writes is read first and put back: the content is kept; do not unplug it while the probe runs)",
            human(r),
            human(w)
        );
    }
    confirm(&[&claimed], job.yes)?;
    let p = job.run(&claimed, g.progress())?;
    let path = claimed.disk().path().display().to_string();
    let result = match &p.verdict {
        v if v.is_fake() => Err(Found(format!("{path}: {}", p.describe())).into()),
        Verdict::NotProbed { why } => Err(anyhow::anyhow!("{path}: not probed: {why}")),
        _ => Ok(()),
    };
    let o = Outcome::of(&serde_json::json!({
        "target": crate::report::Target::device(&claimed),
        "probe": p,
        "honest": result.is_ok(),
    }))?;
    Ok(match result {
        Ok(()) => o.line(format!(
            "{path}: {} ({} written and put back, {} read)",
            p.describe(),
            human(p.bytes_written),
            human(p.bytes_read)
        )),
        Err(e) => o.ending(Err(e)),
    })
}
