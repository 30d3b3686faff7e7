//! Before a device is written: the device as a person should see it, and their word.

use crate::blockdev::Claimed;
use crate::error::Refused;
use crate::util::units::human;
use anyhow::{bail, Result};
use std::io::{BufRead, IsTerminal, Write};

/// The device as a person should see it before agreeing to overwrite it (no I/O: what it
/// holds was read when it was claimed).
pub fn describe(claimed: &Claimed) -> String {
    let disk = claimed.disk();
    let (r, d) = (&disk.resolved, &disk.info);
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
    s.push_str(&format!("model:       {}\n", d.model_text()));
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
    for p in &d.partitions {
        s.push_str(&format!(
            "partition:   {} {} {} (as the kernel sees it)\n",
            p.name,
            human(p.size),
            p.label
                .as_deref()
                .map(|l| format!("'{}'", crate::util::text::printable(l)))
                .unwrap_or_default()
        ));
    }
    // What was on it when it was claimed, read with pi-burn's own readers (the kernel does
    // not scan every table: loop devices, a card just written).
    s.push_str(&format!("holds now:   {}\n", claimed.holds()));
    s
}

/// The plan's line for the capacity probe of a device of `size` bytes.
pub fn probe_line(size: u64, sector_size: u64, probe: bool) -> String {
    use crate::write::probe::{burn_cost, SAMPLES};
    if !probe {
        return "probe:       skipped (--no-probe): a counterfeit that holds less than it claims would take the data and lose it\n".into();
    }
    let [(w0, r0), (w1, r1)] = burn_cost(size, sector_size);
    if w0 == 0 {
        return "probe:       none (the device is too small to probe)\n".into();
    }
    format!(
        "probe:       a wrap test and {SAMPLES} samples stamped beside the data before it, read back after it and put back ({} written, {} read), to test that it holds its {}: a counterfeit is refused (`pi-burn probe` is the full test, run first when the data leaves no room beside it; --no-probe skips it)\n",
        human(w0 + w1),
        human(r0 + r1),
        human(size)
    )
}

/// What the success line says of the probe.
pub fn probe_summary(p: Option<&crate::write::probe::Probed>) -> String {
    match p {
        Some(p) if p.bytes_written > 0 => format!(
            "; probe ({} written and put back): {}",
            human(p.bytes_written),
            p.describe()
        ),
        Some(p) => format!("; {}", p.describe()),
        None => "; not probed (--no-probe)".into(),
    }
}

/// One confirmation for every device: the user types their names, in order, separated by
/// spaces. Without a terminal, refuses.
pub fn confirm(devices: &[&Claimed], yes: bool) -> Result<()> {
    let paths: Vec<String> = devices
        .iter()
        .map(|c| c.disk().path().display().to_string())
        .collect();
    if yes {
        return Ok(());
    }
    // Ask on standard input when it is a terminal; else (`cat img | pi-burn flash - /dev/sdX`)
    // on the controlling terminal, when there is one.
    let tty = if std::io::stdin().is_terminal() {
        None
    } else {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            Ok(t) => Some(t),
            Err(_) => bail!(Refused(format!(
                "refusing to write {} without confirmation: there is no terminal to ask on; pass --yes",
                paths.join(", ")
            ))),
        }
    };
    let names: Vec<&str> = devices
        .iter()
        .map(|c| c.disk().info.name.as_str())
        .collect();
    let question = format!(
        "pi-burn: everything on {} will be lost. Type {} ({}) to go on: ",
        paths.join(", "),
        if names.len() == 1 {
            "its name"
        } else {
            "their names"
        },
        names.join(" ")
    );
    let mut line = String::new();
    match tty {
        None => {
            eprint!("{question}");
            std::io::stderr().flush()?;
            std::io::stdin().lock().read_line(&mut line)?;
        }
        Some(mut t) => {
            t.write_all(question.as_bytes())?;
            t.flush()?;
            std::io::BufReader::new(t).read_line(&mut line)?;
        }
    }
    let answer: Vec<&str> = line.split_whitespace().collect();
    let ok = answer.len() == names.len()
        && answer.iter().zip(devices).all(|(a, c)| {
            let (r, d) = (&c.disk().resolved, &c.disk().info);
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
