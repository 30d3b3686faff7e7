//! `pi-burn flash IMAGE DEVICE...`: golden images onto one or many cards.

use super::prompt::{confirm_all, describe};
use super::{device_target, Global};
use crate::blockdev::device::{open_exclusive, DeviceSink};
use crate::blockdev::{blockers, Allow};
use crate::cli::FlashArgs;
use crate::disk::bmap::{self, Bmap};
use crate::error::Refused;
use crate::report::Target;
use crate::util::units::human;
use crate::write::source::{self, Kind};
use crate::write::{flash, Input, Plan};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The block map to use: the one given, else a sidecar next to the image.
fn find_bmap(a: &FlashArgs) -> Result<Option<(PathBuf, Bmap)>> {
    if a.no_bmap {
        return Ok(None);
    }
    let candidates: Vec<PathBuf> = match &a.bmap {
        Some(p) => vec![p.clone()],
        None if a.image.as_os_str() == "-" => vec![],
        None => {
            let mut c = vec![bmap::sidecar(&a.image)];
            let s = a.image.to_string_lossy();
            for ext in [".gz", ".xz", ".zst"] {
                if let Some(stem) = s.strip_suffix(ext) {
                    c.push(bmap::sidecar(Path::new(stem)));
                }
            }
            c
        }
    };
    for p in candidates {
        if a.bmap.is_none() && !p.is_file() {
            continue;
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        return Ok(Some((
            p.clone(),
            bmap::parse(&text, &p.display().to_string())?,
        )));
    }
    Ok(None)
}

pub fn run(a: &FlashArgs, g: &Global) -> Result<()> {
    // 1. Every device: a whole disk, free, not named twice.
    let mut targets = vec![];
    for p in &a.devices {
        let (t, r, d) = device_target(p)?;
        if targets
            .iter()
            .any(|(_, r2, _): &(_, crate::blockdev::Resolved, _)| r2.dev == r.dev)
        {
            bail!(super::usage(format!(
                "{} is named twice",
                r.canonical.display()
            )));
        }
        targets.push((t, r, d));
    }
    let mut refusals = vec![];
    for (t, r, d) in &targets {
        let b = blockers(
            t,
            d,
            Allow {
                fixed_disk: a.device_opts.allow_fixed_disk,
            },
        )?;
        if !b.is_empty() {
            refusals.push(format!("{}: {}", r.canonical.display(), b.join("; ")));
        }
    }
    if !refusals.is_empty() {
        bail!(Refused(format!("refusing: {}", refusals.join("; "))));
    }
    // 2. The image and its map.
    let src = source::open(&a.image)?;
    let map = find_bmap(a)?;
    let (input, plan, how) = match (&map, src.kind, src.file) {
        (Some((p, b)), Kind::Raw, Some(f)) => {
            if src.size != Some(b.image_size) {
                bail!(
                    "{} is {} bytes but its block map {} describes {} bytes",
                    src.name,
                    src.size.unwrap_or(0),
                    p.display(),
                    b.image_size
                );
            }
            (
                Input::File(f),
                Plan {
                    require_table: !a.no_table,
                    ..Plan::from_bmap(b)
                },
                format!(
                    "block map {} ({} mapped)",
                    p.display(),
                    human(b.mapped_bytes())
                ),
            )
        }
        (Some((p, b)), _, _) => (
            Input::Stream(src.stream.expect("a stream")),
            Plan {
                require_table: !a.no_table,
                ..Plan::from_bmap(b)
            },
            format!(
                "block map {} ({} mapped, {} stream)",
                p.display(),
                human(b.mapped_bytes()),
                kind_name(src.kind)
            ),
        ),
        (None, Kind::Raw, Some(f)) => {
            // Without a block map nothing says a hole does not matter: holes are written as
            // zeros, so no byte of what the card held before survives inside the image.
            let size = src.size.unwrap_or(0);
            (
                Input::File(f),
                Plan {
                    require_table: !a.no_table,
                    image_size: Some(size),
                    ranges: Some(vec![(0, size, None)]),
                },
                format!(
                    "no block map: the whole file ({}), holes written as zeros",
                    human(size)
                ),
            )
        }
        (None, k, _) => (
            Input::Stream(src.stream.expect("a stream")),
            Plan {
                require_table: !a.no_table,
                image_size: None,
                ranges: None,
            },
            format!("no block map: the whole {} stream", kind_name(k)),
        ),
    };
    // 3. The plan, shown; one confirmation for all.
    if !g.quiet || a.device_opts.dry_run || !a.device_opts.yes {
        for (_, r, d) in &targets {
            eprint!("{}", describe(r, d));
        }
        eprintln!(
            "will write:  {} onto {} device(s): {how}; partition table last, read back after",
            src.name,
            targets.len()
        );
    }
    if a.device_opts.dry_run {
        // Every check a real run makes before writing: the image's table, its size and
        // sector size against each device.
        let head = crate::write::read_head(input).context("reading the image's first MiB")?;
        let problems = crate::write::head_problems(
            &head,
            plan.image_size,
            plan.require_table,
            targets.iter().map(|(_, r, d)| {
                (
                    r.canonical.display().to_string(),
                    d.size,
                    d.logical_sector_size,
                )
            }),
        );
        let result = if problems.is_empty() {
            g.progress
                .phase("dry run: every check passed; nothing was written");
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "dry run: {} of {} device(s) could not take the image; nothing was written",
                problems.len(),
                targets.len()
            ))
        };
        if g.json {
            let mut j = serde_json::json!({
                "image": src.name, "source": kind_name(src.kind), "dry_run": true, "write": how,
                "targets": targets.iter().map(|(_, r, d)| serde_json::json!({
                    "target": device_target_json(r, d),
                    "ok": !problems.iter().any(|p| p.contains(&r.canonical.display().to_string())),
                })).collect::<Vec<_>>(),
                "problems": problems,
            });
            return finish_json(&mut j, result);
        }
        for p in &problems {
            println!("{p}");
        }
        return result;
    }
    let pairs: Vec<(
        &crate::blockdev::Resolved,
        &crate::blockdev::sysfs::DiskInfo,
    )> = targets.iter().map(|(_, r, d)| (r, d)).collect();
    confirm_all(&pairs, a.device_opts.yes)?;
    let mut sinks: Vec<Box<dyn crate::write::Sink>> = vec![];
    for (t, r, d) in &targets {
        sinks.push(Box::new(DeviceSink::new(open_exclusive(t, r, d)?)?));
    }
    // 4. One read of the image, every device in parallel; on a terminal, a bar per device.
    use std::io::IsTerminal;
    let bars = (!g.quiet && !g.json && std::io::stderr().is_terminal())
        .then(indicatif::MultiProgress::new);
    let mut meters: Vec<crate::write::Meter> = vec![];
    if let Some(mp) = &bars {
        let total = plan.bytes();
        for (_, r, _) in &targets {
            let b = mp.add(indicatif::ProgressBar::new(total));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(r.canonical.display().to_string());
            meters.push(Box::new(move |n| b.inc(n)));
        }
    }
    let silent = crate::progress::Silent { notices: !g.quiet };
    let progress: &dyn crate::progress::Progress = if bars.is_some() {
        &silent
    } else {
        g.progress.as_ref()
    };
    let outcomes = flash(
        input,
        &plan,
        sinks,
        !a.device_opts.no_verify,
        progress,
        meters,
    )?;
    if let Some(mp) = bars {
        let _ = mp.clear();
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok).collect();
    let result = if failed.is_empty() {
        Ok(())
    } else if failed.iter().all(|o| o.read_back_differs) {
        // What was read back differs from what was written: a verification failure (exit 3).
        Err(crate::error::Mismatch(
            failed
                .iter()
                .map(|o| format!("{}: {}", o.target, o.error.as_deref().unwrap_or("?")))
                .collect(),
        )
        .into())
    } else {
        Err(anyhow::anyhow!(
            "{} of {} device(s) failed: {}",
            failed.len(),
            outcomes.len(),
            failed
                .iter()
                .map(|o| format!("{}: {}", o.target, o.error.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    };
    if g.json {
        // One object: every device's outcome under the same `target` shape as sdcard and ssd.
        let mut j = serde_json::json!({
            "image": src.name, "source": kind_name(src.kind), "dry_run": false, "write": how,
            "targets": outcomes.iter().zip(&targets).map(|(o, (_, r, d))| serde_json::json!({
                "target": device_target_json(r, d),
                "ok": o.ok, "error": o.error, "bytes_written": o.bytes_written,
                "bytes_read_back": o.bytes_read_back, "gpt_relocated": o.gpt_relocated,
            })).collect::<Vec<_>>(),
        });
        return finish_json(&mut j, result);
    } else if !g.quiet || !failed.is_empty() {
        println!(
            "{:<24} {:<6} {:>12} {:>12} {:<9} error",
            "device", "result", "written", "read back", "gpt moved"
        );
        for o in &outcomes {
            println!(
                "{:<24} {:<6} {:>12} {:>12} {:<9} {}",
                o.target,
                if o.ok { "ok" } else { "FAILED" },
                human(o.bytes_written),
                human(o.bytes_read_back),
                if o.gpt_relocated { "yes" } else { "no" },
                o.error.as_deref().unwrap_or("")
            );
        }
    }
    result
}

/// The `target` object of every report: kind, path, size.
fn device_target_json(
    r: &crate::blockdev::Resolved,
    d: &crate::blockdev::sysfs::DiskInfo,
) -> serde_json::Value {
    serde_json::to_value(Target {
        kind: "device",
        path: r.canonical.display().to_string(),
        size: d.size,
    })
    .expect("a target serialises")
}

/// Prints `j` with the outcome's `error` and `exit_code` (failures too: one object per run).
fn finish_json(j: &mut serde_json::Value, result: Result<()>) -> Result<()> {
    let (error, code) = match &result {
        Ok(()) => (None, 0),
        Err(e) => {
            let (m, c) = crate::error::Reported::fields(e);
            (Some(m), c)
        }
    };
    j["error"] = serde_json::json!(error);
    j["exit_code"] = serde_json::json!(code);
    println!("{}", serde_json::to_string_pretty(j)?);
    result.map_err(|e| crate::error::Reported(e).into())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Raw => "raw",
        Kind::Gzip => "gzip",
        Kind::Xz => "xz",
        Kind::Zstd => "zstd",
    }
}
