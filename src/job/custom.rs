//! What a card's firmware gets besides the release: UEFI settings and config.txt edits, from
//! pi-burn.toml and the command line, each value with where it came from.

use crate::cli::{CustomArgs, OnOff, SystemTable};
use crate::cluster::Custom;
use crate::error::usage;
use crate::firmware::configtxt::{EditApplied, EditChange};
use crate::firmware::uefivars::settings::{def_of, parse_for, Value};
use crate::firmware::uefivars::{Applied, Setting};
use crate::firmware::Firmware;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The settings and config.txt edits a card gets: `FLAKE/pi-burn.toml`'s for `node` (when
/// given), overridden by the command line's, all of `board`'s firmware. Checked before any
/// download.
pub fn custom(a: &CustomArgs, board: &str, node: Option<(&Path, &str)>) -> Result<Custom> {
    let base = match node {
        Some((flake, node)) => {
            crate::cluster::for_node(flake, node, &crate::ssd::config::nodes(flake), board)?
        }
        None => Custom::default(),
    };
    with_base(a, board, base)
}

/// The command line's settings and edits over `base` (a node's pi-burn.toml values).
pub fn with_base(a: &CustomArgs, board: &str, base: Custom) -> Result<Custom> {
    let mut cli = Custom::default();
    let set = a
        .set
        .iter()
        .map(|s| parse_for(board, s, "--set"))
        .collect::<Result<Vec<_>>>()?;
    let mut friendly = |flag: &str, name: &str, v: u32| -> Result<()> {
        let d = def_of(board, name).map_err(|e| usage(format!("{flag}: {e:#}")))?;
        if let Some(s) = set
            .iter()
            .find(|s| std::ptr::eq(s.def, d) && s.value != Value::Num(v))
        {
            bail!(usage(format!(
                "{flag} and --set {name}={} disagree",
                s.value
            )));
        }
        cli.settings.push(Setting {
            def: d,
            value: Value::Num(v),
            from: flag.into(),
        });
        Ok(())
    };
    if let Some(v) = a.ram_limit_3gb {
        friendly("--ram-limit-3gb", "RamLimitTo3GB", (v == OnOff::On) as u32)?;
    }
    if let Some(m) = a.system_table {
        let v = match m {
            SystemTable::Acpi => 0,
            SystemTable::AcpiDevicetree => 1,
            SystemTable::Devicetree => 2,
        };
        friendly("--system-table", "SystemTableMode", v)?;
    }
    cli.settings.extend(set);
    cli.edits = a.config_txt.clone();
    let c = base.then(cli);
    bounded(&c)?;
    Ok(c)
}

/// The record's bounds (disk::record), checked before anything is built: more settings or
/// edits than a card records is a usage error.
fn bounded(c: &Custom) -> Result<()> {
    use crate::disk::record::{check_count, MAX_EDITS, MAX_PROPERTIES, MAX_SETTINGS};
    let what = "the settings given";
    check_count(c.settings.len(), MAX_SETTINGS, "UEFI settings", what)
        .and_then(|()| check_count(c.edits.len(), MAX_EDITS, "config.txt edits", what))
        .and_then(|()| {
            check_count(
                c.bootconf.len(),
                MAX_PROPERTIES,
                "bootconf properties",
                what,
            )
        })
        .map_err(|e| usage(format!("{e:#}")))
}

/// The settings and edits a card's record names, each with where the record says it came
/// from, checked as the flags are: a setting this pi-burn knows, a config.txt edit it accepts.
/// `origin` names the record in errors.
pub fn from_record(r: &crate::disk::record::CardRecord, origin: &str) -> Result<Custom> {
    let mut c = Custom::default();
    for s in &r.uefi {
        let def =
            crate::firmware::uefivars::settings::lookup(&s.name, &s.guid).with_context(|| {
                format!(
                    "{origin}: UEFI {} is no setting this pi-burn knows",
                    crate::util::text::printable(&s.name)
                )
            })?;
        def.check(&s.value)
            .map_err(|e| anyhow::anyhow!("{origin}: UEFI {e}"))?;
        c.settings.push(Setting {
            def,
            value: s.value.clone(),
            from: s.from.clone(),
        });
    }
    for e in &r.config_txt {
        c.edits.push(
            crate::firmware::configtxt::edit(&e.key, &e.value, &e.from)
                .with_context(|| format!("{origin}: config.txt edit"))?,
        );
    }
    Ok(c)
}

/// Whether the command line asks for any setting or edit.
pub fn names_any(a: &CustomArgs) -> bool {
    !a.set.is_empty()
        || !a.config_txt.is_empty()
        || a.ram_limit_3gb.is_some()
        || a.system_table.is_some()
}

/// What was changed in the firmware, for the report and the card record.
#[derive(Debug, Clone, Default)]
pub struct Customised {
    pub uefi: Vec<Applied>,
    pub config_txt: Vec<EditApplied>,
}

impl Customised {
    /// The plan's lines for each setting and config.txt edit, with its source.
    pub fn plan_lines(&self) -> Vec<String> {
        let uefi = self.uefi.iter().map(|a| {
            format!(
                "             UEFI {} = {} (from {})",
                a.name, a.value, a.from
            )
        });
        let txt = self.config_txt.iter().map(|e| {
            format!(
                "             config.txt {}={} (from {})",
                e.key, e.value, e.from
            )
        });
        uefi.chain(txt).collect()
    }
}

/// Applies `c` to the firmware's RPI_EFI.fd and config.txt (before anything is built).
pub fn customise(fw: &mut Firmware, c: &Custom, progress: &dyn Progress) -> Result<Customised> {
    let mut out = Customised::default();
    if !c.settings.is_empty() {
        let defs = crate::firmware::uefivars::settings::table(&fw.board)?;
        if let Some(s) = c
            .settings
            .iter()
            .find(|s| !defs.iter().any(|d| std::ptr::eq(d, s.def)))
        {
            bail!(usage(format!(
                "UEFI setting {} (from {}) is not one of board {}'s firmware",
                s.def.name, s.from, fw.board
            )));
        }
        let fd = fw
            .files
            .file("RPI_EFI.fd")
            .context("the firmware has no RPI_EFI.fd")?;
        let (patched, applied) = crate::firmware::uefivars::apply(
            fd,
            &c.settings,
            &format!("RPI_EFI.fd of {} {}", fw.board, fw.version),
        )?;
        fw.files.replace("RPI_EFI.fd", patched)?;
        for s in &c.settings {
            progress.phase(&format!(
                "UEFI setting {} = {} ({}; from {})",
                s.def.name, s.value, s.def.meaning, s.from
            ));
        }
        out.uefi = applied;
    }
    if !c.edits.is_empty() {
        let origin = format!("config.txt of {} {}", fw.board, fw.version);
        let text = fw.files.file("config.txt").with_context(|| {
            format!("the firmware {} {} has no config.txt", fw.board, fw.version)
        })?;
        let text =
            std::str::from_utf8(text).with_context(|| format!("{origin} is not UTF-8 text"))?;
        let (edited, applied) = crate::firmware::configtxt::apply(text, &c.edits, &origin)?;
        fw.files.replace("config.txt", edited.into_bytes())?;
        for e in &applied {
            let what = match e.change {
                EditChange::Added => "added",
                EditChange::Replaced => "replaced",
                EditChange::Unchanged => "already so",
            };
            progress.phase(&format!(
                "config.txt {}={} ({what}; from {})",
                e.key, e.value, e.from
            ));
        }
        out.config_txt = applied;
    }
    Ok(out)
}
