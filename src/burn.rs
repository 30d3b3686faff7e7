//! Burning a built disk onto a block device: show the plan, get the user's word, then the
//! exclusive open, the ordered write, the reread and the read-back.

pub use crate::error::Refused;
use crate::flash::{flash, Input, Plan};
use crate::layout::human;
use crate::progress::Progress;
use crate::sparse::SparseImage;
use crate::target::device::{open_exclusive, DeviceSink};
use crate::target::sysfs::{DiskInfo, SysTree};
use crate::target::Resolved;
use anyhow::{bail, Result};
use std::io::{BufRead, IsTerminal, Write};

/// The device as a person should see it before agreeing to overwrite it.
pub fn describe(r: &Resolved, d: &DiskInfo) -> String {
    let mut s = String::new();
    let shown = if r.given != r.canonical {
        format!("{} -> {}", r.given.display(), r.canonical.display())
    } else {
        r.canonical.display().to_string()
    };
    s.push_str(&format!(
        "device:      {shown} ({}, {}:{})\n",
        d.name, d.dev.0, d.dev.1
    ));
    for id in &d.by_id {
        s.push_str(&format!("by-id:       {id}\n"));
    }
    let model = [d.vendor.as_deref(), d.model.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    s.push_str(&format!(
        "model:       {}\n",
        if model.is_empty() {
            "(unknown)"
        } else {
            &model
        }
    ));
    s.push_str(&format!(
        "serial:      {}\n",
        d.serial.as_deref().unwrap_or("(unknown)")
    ));
    s.push_str(&format!(
        "transport:   {}{}\n",
        d.transport,
        if d.removable { ", removable" } else { "" }
    ));
    if let Some(b) = &d.backing_file {
        s.push_str(&format!("backing:     {b}\n"));
    }
    s.push_str(&format!(
        "size:        {} ({} bytes), {}-byte sectors\n",
        human(d.size),
        d.size,
        d.logical_sector_size
    ));
    if d.partitions.is_empty() {
        s.push_str("partitions:  none\n");
    }
    for p in &d.partitions {
        s.push_str(&format!(
            "partition:   {} {} {}\n",
            p.name,
            human(p.size),
            p.label
                .as_deref()
                .map(|l| format!("'{l}'"))
                .unwrap_or_default()
        ));
    }
    s
}

/// Asks the user to type the device's name. Without a terminal, refuses.
pub fn confirm(d: &DiskInfo, path: &Resolved, yes: bool) -> Result<()> {
    confirm_all(&[(path, d)], yes)
}

/// One confirmation for several devices: the user types their names, in order, separated by
/// spaces. Without a terminal, refuses.
pub fn confirm_all(devices: &[(&Resolved, &DiskInfo)], yes: bool) -> Result<()> {
    let paths: Vec<String> = devices
        .iter()
        .map(|(r, _)| r.canonical.display().to_string())
        .collect();
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(Refused(format!(
            "refusing to write {} without confirmation: there is no terminal to ask on; pass --yes",
            paths.join(", ")
        )));
    }
    let names: Vec<&str> = devices.iter().map(|(_, d)| d.name.as_str()).collect();
    eprint!(
        "pi-burn: everything on {} will be lost. Type {} ({}) to go on: ",
        paths.join(", "),
        if names.len() == 1 {
            "its name"
        } else {
            "their names"
        },
        names.join(" ")
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let answer: Vec<&str> = line.split_whitespace().collect();
    let ok = answer.len() == names.len()
        && answer.iter().zip(devices).all(|(a, (r, d))| {
            *a == d.name || *a == r.canonical.to_string_lossy() || *a == r.given.to_string_lossy()
        });
    if ok {
        Ok(())
    } else {
        bail!(Refused(format!(
            "not confirmed ('{}' is not '{}'); nothing was written",
            answer.join(" "),
            names.join(" ")
        )))
    }
}

/// What a burn did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BurnStats {
    pub bytes_written: u64,
    pub bytes_read_back: u64,
    pub mismatches: Vec<String>,
}

/// Writes `img` to the device through the one write engine ([`crate::flash::flash`]: table
/// areas wiped, data, flush, table last, flush, reread, O_DIRECT read-back; on any failure the
/// table areas are wiped again). The image's extents are its block map. A read-back difference
/// comes back as `mismatches`; any other failure is an error.
pub fn burn(
    t: &SysTree,
    r: &Resolved,
    shown: &DiskInfo,
    img: &SparseImage,
    verify: bool,
    progress: &dyn Progress,
) -> Result<BurnStats> {
    let dev = open_exclusive(t, r, shown)?;
    if img.size() != dev.size {
        bail!(
            "internal: the plan is for {} bytes, {} has {}",
            img.size(),
            dev.path.display(),
            dev.size
        );
    }
    progress.phase(&format!(
        "writing {} ({} of extents)",
        dev.path.display(),
        human(img.written_bytes())
    ));
    let plan = Plan {
        image_size: Some(img.size()),
        ranges: Some(
            img.extents()
                .iter()
                .map(|e| (e.offset, e.len, None))
                .collect(),
        ),
        require_table: true,
    };
    let sink = DeviceSink::new(dev)?;
    let outcome = flash(
        Input::Sparse(img),
        &plan,
        vec![Box::new(sink)],
        verify,
        progress,
        vec![],
    )?
    .pop()
    .expect("one outcome per sink");
    let stats = BurnStats {
        bytes_written: outcome.bytes_written,
        bytes_read_back: outcome.bytes_read_back,
        mismatches: vec![],
    };
    match outcome.error {
        None => Ok(stats),
        Some(e) if outcome.read_back_differs => Ok(BurnStats {
            mismatches: vec![e],
            ..stats
        }),
        Some(e) => bail!("{}: {e}", outcome.target),
    }
}
