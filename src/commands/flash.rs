//! `pi-burn flash IMAGE DEVICE...`: golden images onto one or many cards.

use super::prompt::{confirm, describe, probe_line};
use super::{Global, Outcome};
use crate::cli::FlashArgs;
use crate::error::Mismatch;
use crate::job::flash::FlashJob;
use crate::util::units::human;
use crate::write::device::DeviceSink;
use crate::write::{flash, read_head, target_problems, TargetError, TargetOutcome};
use anyhow::{Context, Result};

pub fn run(a: &FlashArgs, g: &Global) -> Result<Outcome> {
    // 1. Every device claimed, 2. the image and its map opened: before anything is written.
    let job = FlashJob::from_args(a)?;
    let claimed = job.claim()?;
    let src = job.open()?;
    // 3. The plan, shown; one confirmation for all.
    let opts = &job.device;
    if !g.quiet || opts.dry_run || !opts.yes {
        for c in &claimed {
            eprint!("{}", describe(c));
            let d = &c.disk().info;
            eprint!("{}", probe_line(d.size, d.logical_sector_size, opts.probe));
        }
        eprintln!(
            "will write:  {} onto {} device(s): {}; partition table last, read back after",
            src.name,
            claimed.len(),
            src.how
        );
    }
    if opts.dry_run {
        return dry_run(src, &claimed, g);
    }
    let refs: Vec<&crate::blockdev::Claimed> = claimed.iter().collect();
    confirm(&refs, opts.yes)?;
    let mut sinks: Vec<Box<dyn crate::write::Sink>> = vec![];
    for c in &claimed {
        sinks.push(Box::new(DeviceSink::new(c.open_for_writing()?)?));
    }
    // 4. One read of the image, every device in parallel.
    let outcomes = flash(
        src.input,
        &src.plan,
        sinks,
        &opts.write_options(),
        g.progress(),
    );
    let result = outcome_error(&outcomes);
    grow_notes(&outcomes, g);
    // One object: every device's outcome under the same `target` shape as sdcard and ssd.
    let o = Outcome::of(&serde_json::json!({
        "image": src.name, "source": src.kind.name(), "dry_run": false, "write": src.how,
        "targets": outcomes.iter().zip(&claimed).map(|(o, c)| {
            let s = o.stats();
            serde_json::json!({
                "target": crate::report::Target::device(c),
                "ok": o.ok(), "error": o.error_text(), "bytes_written": s.bytes_written,
                "bytes_read_back": s.bytes_read_back, "gpt_relocated": s.gpt_relocated,
                "grown": s.grown, "probe": s.probe,
            })
        }).collect::<Vec<_>>(),
    }))?;
    // The table of results: shown with -q too when a device failed.
    let table = table_lines(&outcomes);
    Ok(if result.is_err() {
        o.problems(table)
    } else {
        o.lines(table)
    }
    .ending(result))
}

/// `--dry-run`: every check a real run makes before writing, nothing written.
fn dry_run(
    src: crate::job::flash::Opened,
    claimed: &[crate::blockdev::Claimed],
    g: &Global,
) -> Result<Outcome> {
    // Every check a real run makes before writing: the image's table, its size and
    // sector size against each device.
    let head = read_head(src.input).context("reading the image's first MiB")?;
    let per_target = target_problems(
        &head,
        src.plan.image_size,
        src.plan.require_table,
        claimed.iter().map(|c| {
            let d = c.disk();
            (
                d.path().display().to_string(),
                d.info.size,
                d.info.logical_sector_size,
            )
        }),
    );
    let problems: Vec<String> = per_target.iter().flatten().cloned().collect();
    let result = if problems.is_empty() {
        g.progress()
            .phase("dry run: every check passed; nothing was written");
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "dry run: {} of {} device(s) could not take the image; nothing was written",
            problems.len(),
            claimed.len()
        ))
    };
    Ok(Outcome::of(&serde_json::json!({
        "image": src.name, "source": src.kind.name(), "dry_run": true, "write": src.how,
        "targets": claimed.iter().zip(&per_target).map(|(c, p)| serde_json::json!({
            "target": crate::report::Target::device(c),
            "ok": p.is_none(),
        })).collect::<Vec<_>>(),
        "problems": problems,
    }))?
    .problems(problems.clone())
    .ending(result))
}

/// What became of each device's table: laid out anew (a grown SSD), or moved to its end.
fn grow_notes(outcomes: &[TargetOutcome], g: &Global) {
    for o in outcomes.iter().filter(|o| o.ok()) {
        let s = o.stats();
        match (&s.grown, s.gpt_relocated) {
            (Some(grown), _) => g.progress().phase(&format!(
                "{}: the disk was laid out for the device as disko would: {grown}",
                o.name
            )),
            (None, true) => g.progress().notice(&format!(
                "notice: {}: the backup GPT moved to the device's end, the partitions kept the image's sizes (the space after them is unused); an SSD image pi-burn made, flashed with its block map, has its \"100%\" partition grown to the device",
                o.name
            )),
            _ => {}
        }
    }
}

/// The run's outcome: every target failed by a read-back difference is a verification
/// failure (exit 3); any other failure is exit 1.
fn outcome_error(outcomes: &[TargetOutcome]) -> Result<()> {
    let failed: Vec<&TargetOutcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failed
        .iter()
        .map(|o| format!("{}: {}", o.name, o.error_text().unwrap_or_default()))
        .collect();
    let differs = |o: &&TargetOutcome| matches!(&o.result, Err(f) if matches!(f.error, TargetError::Differs { .. }));
    if failed.iter().all(differs) {
        return Err(Mismatch(lines).into());
    }
    // Counterfeits are what the probe looks for: found (exit 3, as `probe` says it).
    let fake = |o: &&TargetOutcome| matches!(&o.result, Err(f) if matches!(f.error, TargetError::Counterfeit { .. }));
    if failed.iter().all(fake) {
        return Err(crate::error::Found(lines.join("; ")).into());
    }
    Err(anyhow::anyhow!(
        "{} of {} device(s) failed: {}",
        failed.len(),
        outcomes.len(),
        lines.join("; ")
    ))
}

fn table_lines(outcomes: &[TargetOutcome]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<24} {:<6} {:>12} {:>12} {:<9} {:<10} error",
        "device", "result", "written", "read back", "gpt moved", "probe"
    )];
    for o in outcomes {
        let s = o.stats();
        lines.push(format!(
            "{:<24} {:<6} {:>12} {:>12} {:<9} {:<10} {}",
            o.name,
            if o.ok() { "ok" } else { "FAILED" },
            human(s.bytes_written),
            human(s.bytes_read_back),
            if s.gpt_relocated { "yes" } else { "no" },
            match &s.probe {
                None => "skipped".to_string(),
                Some(p) if p.verdict.is_fake() => "COUNTERFEIT".to_string(),
                Some(p) if p.bytes_written == 0 => "too small".to_string(),
                Some(p) => human(p.bytes_written),
            },
            o.error_text().unwrap_or_default()
        ));
    }
    lines
}
