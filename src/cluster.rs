//! `pi-burn.toml` at the flake's root: per-node firmware settings and config.txt edits.
//!
//! ```toml
//! [defaults]
//! uefi = { RamLimitTo3GB = 0 }
//! config_txt = { hdmi_force_hotplug = "1" }
//! [nodes.pi-beta]
//! uefi = { SystemTableMode = 2, AssetTag = "pi-beta" }
//! [defaults.eeprom]
//! BOOT_ORDER = 0xf41
//! ```
//! `eeprom` tables set bootloader properties (bootconf.txt) for `pi-burn eeprom`; with a
//! `[defaults.eeprom]` table, `images` writes the cluster's EEPROM card too. `ssd_firmware =
//! true` puts a node's firmware on its SSD's ESP (`ssd --with-firmware`, and so `images`).
//! A node's table overrides `[defaults]`; the command line overrides both. Unknown keys, unknown
//! settings and nodes that the flake does not have are errors.

use crate::error::usage;
use crate::firmware::configtxt::{self, Edit};
use crate::firmware::uefivars::settings::{self, Allowed, Setting};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "pi-burn.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    defaults: Option<Table>,
    #[serde(default)]
    nodes: BTreeMap<String, Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    uefi: BTreeMap<String, toml::Value>,
    #[serde(default)]
    config_txt: BTreeMap<String, toml::Value>,
    eeprom: Option<BTreeMap<String, toml::Value>>,
    /// The firmware goes on the node's SSD, in its ESP (`ssd --with-firmware`; `images`).
    ssd_firmware: Option<bool>,
}

/// What a card carries besides the firmware: UEFI settings and config.txt edits, each with
/// where it came from.
#[derive(Debug, Clone, Default)]
pub struct Custom {
    pub settings: Vec<Setting>,
    pub edits: Vec<Edit>,
    /// Bootloader properties (bootconf.txt), for EEPROM cards.
    pub bootconf: Vec<Edit>,
    /// `ssd_firmware`: the firmware on the node's SSD (its ESP) instead of an SD card, with
    /// where it was said.
    pub ssd_firmware: Option<(bool, String)>,
}

impl Custom {
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.edits.is_empty()
    }
    /// `later` overrides `self`, key by key.
    pub fn then(self, later: Custom) -> Custom {
        Custom {
            settings: settings::merge([self.settings, later.settings].concat()),
            edits: configtxt::merge([self.edits, later.edits].concat()),
            bootconf: configtxt::merge([self.bootconf, later.bootconf].concat()),
            ssd_firmware: later.ssd_firmware.or(self.ssd_firmware),
        }
    }
}

/// A scalar of pi-burn.toml as the text `--set` would take, or why it is the wrong type.
fn scalar(v: &toml::Value, text: bool, what: &str) -> Result<String> {
    match (v, text) {
        (toml::Value::String(s), true) => Ok(s.clone()),
        (toml::Value::Integer(i), false) => Ok(i.to_string()),
        (v, true) => bail!(usage(format!("{what} = {v}: expected a string"))),
        (v, false) => bail!(usage(format!("{what} = {v}: expected an integer"))),
    }
}

fn table(t: &Table, from: &str, board: &str) -> Result<Custom> {
    let mut out = Custom::default();
    for (name, v) in &t.uefi {
        let def = settings::def_of(board, name).with_context(|| format!("{from} uefi"))?;
        // Names match without case: two spellings of one setting would leave one of them
        // silently unused.
        if let Some(other) = t
            .uefi
            .keys()
            .find(|o| *o != name && o.eq_ignore_ascii_case(name))
        {
            bail!(usage(format!(
                "{from} uefi: '{}' and '{}' are one setting ({}); give it once",
                crate::util::text::printable(other),
                crate::util::text::printable(name),
                def.name
            )));
        }
        let what = format!("{from} uefi.{name}");
        if let Allowed::Fields = def.allowed {
            // A structure: a table of its fields (uefi.Pcie1Settings = { MaxLinkSpeed = 3 }).
            let toml::Value::Table(fields) = v else {
                bail!(usage(format!(
                    "{what} = {v}: expected a table of its fields (e.g. {{ {} = ... }})",
                    def.fields().first().map_or("Field", |f| f.name)
                )));
            };
            for (f, fv) in fields {
                let text = scalar(fv, false, &format!("{what}.{f}"))?;
                out.settings.push(Setting {
                    def,
                    value: def.field_value(f, &text).with_context(|| what.clone())?,
                    from: from.to_string(),
                });
            }
            continue;
        }
        let text = scalar(v, matches!(def.allowed, Allowed::Text), &what)?;
        let value = def.value(&text).with_context(|| what.clone())?;
        out.settings.push(Setting {
            def,
            value,
            from: from.to_string(),
        });
    }
    for (key, v) in &t.config_txt {
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            v => bail!(usage(format!(
                "{from} config_txt.{key} = {v}: expected a string or an integer"
            ))),
        };
        out.edits.push(configtxt::edit(key, &value, from)?);
    }
    out.ssd_firmware = t.ssd_firmware.map(|b| (b, format!("{from} ssd_firmware")));
    for (key, v) in t.eeprom.iter().flatten() {
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => crate::eeprom::bootconf::int_text(key, *i),
            v => bail!(usage(format!(
                "{from} eeprom.{key} = {v}: expected a string or an integer"
            ))),
        };
        out.bootconf.push(crate::eeprom::bootconf::edit(
            key,
            &value,
            board,
            &format!("{from} eeprom"),
        )?);
    }
    Ok(out)
}

/// The largest pi-burn.toml read.
const MAX_FILE: u64 = 1 << 20;

/// A flake's pi-burn.toml, read and checked once: every table's keys, settings and values, and
/// that every `[nodes.NAME]` is a node of the flake. A file-level error names the file only.
pub struct Cluster {
    defaults: Custom,
    nodes: BTreeMap<String, Custom>,
    /// Whether `[defaults.eeprom]` is there: `images` then writes the cluster's EEPROM card.
    pub eeprom_card: bool,
}

impl Cluster {
    /// Reads `flake/pi-burn.toml` (none: no settings); `nodes` are the flake's nodes, `board`
    /// the board whose firmware settings its `uefi` tables name.
    pub fn load(flake: &Path, nodes: &[String], board: &str) -> Result<Self> {
        let path = flake.join(FILE);
        if !path.exists() {
            return Ok(Cluster {
                defaults: Custom::default(),
                nodes: BTreeMap::new(),
                eeprom_card: false,
            });
        }
        let text = crate::util::read_text_limited(&path, MAX_FILE, "a pi-burn.toml")
            .map_err(|e| usage(format!("{e:#}")))?;
        let raw: Raw = toml::from_str(&text).map_err(|e| {
            // toml's own text quotes the whole offending line: a position and the message.
            let at = e.span().map_or(String::new(), |sp| {
                let before = &text.as_bytes()[..sp.start.min(text.len())];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                format!("line {line}, column {col}: ")
            });
            let msg: String = e
                .message()
                .trim()
                .replace('\n', " ")
                .chars()
                .take(200)
                .collect();
            usage(format!("{}: {at}{msg}", path.display()))
        })?;
        if let Some(unknown) = raw.nodes.keys().find(|n| !nodes.contains(n)) {
            bail!(usage(format!(
                "{}: [nodes.{}] is not a node of the flake (its nodes: {})",
                path.display(),
                crate::util::text::printable(unknown),
                nodes.join(", ")
            )));
        }
        let defaults = match &raw.defaults {
            Some(t) => table(t, &format!("{FILE} [defaults]"), board)?,
            None => Custom::default(),
        };
        let mut own = BTreeMap::new();
        for (n, t) in &raw.nodes {
            own.insert(n.clone(), table(t, &format!("{FILE} [nodes.{n}]"), board)?);
        }
        Ok(Cluster {
            defaults,
            nodes: own,
            eeprom_card: raw.defaults.as_ref().is_some_and(|d| d.eeprom.is_some()),
        })
    }

    /// What `[defaults]` gives.
    pub fn defaults(&self) -> Custom {
        self.defaults.clone()
    }

    /// The nodes pi-burn.toml names (`[nodes.NAME]`).
    pub fn named(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Nodes with an `eeprom` table of their own.
    pub fn eeprom_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, c)| !c.bootconf.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// What the file gives `node`: `[defaults]`, then `[nodes.NODE]` key by key.
    pub fn for_node(&self, node: &str) -> Custom {
        let own = self.nodes.get(node).cloned().unwrap_or_default();
        self.defaults.clone().then(own)
    }
}

/// The settings `flake/pi-burn.toml` gives `node` (nothing when there is no such file).
/// `nodes` are the flake's nodes: a table for any other name is an error.
pub fn for_node(flake: &Path, node: &str, nodes: &[String], board: &str) -> Result<Custom> {
    Ok(Cluster::load(flake, nodes, board)?.for_node(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::uefivars::Value;

    fn write(text: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), text).unwrap();
        d
    }
    fn nodes() -> Vec<String> {
        vec!["pi-alpha".into(), "pi-beta".into()]
    }

    #[test]
    fn node_tables_override_defaults_and_say_where_values_came_from() {
        let d = write(
            "[defaults]\nuefi = { RamLimitTo3GB = 0, SystemTableMode = 1 }\nconfig_txt = { hdmi_force_hotplug = \"1\" }\n[nodes.pi-beta]\nuefi = { SystemTableMode = 2, AssetTag = \"pi-beta\" }\nconfig_txt = { enable_uart = 1 }\n",
        );
        let c = for_node(d.path(), "pi-beta", &nodes(), "rpi4").unwrap();
        let got: Vec<_> = c
            .settings
            .iter()
            .map(|s| (s.def.name, s.value.clone(), s.from.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("RamLimitTo3GB", Value::Num(0), "pi-burn.toml [defaults]"),
                (
                    "SystemTableMode",
                    Value::Num(2),
                    "pi-burn.toml [nodes.pi-beta]"
                ),
                (
                    "AssetTag",
                    Value::Text("pi-beta".into()),
                    "pi-burn.toml [nodes.pi-beta]"
                ),
            ]
        );
        assert_eq!(c.edits.len(), 2);
        assert_eq!(c.edits[1].value, "1");
        let a = for_node(d.path(), "pi-alpha", &nodes(), "rpi4").unwrap();
        assert_eq!(a.settings.len(), 2);
        assert_eq!(a.settings[1].value, Value::Num(1));
        // No file: nothing.
        let empty = tempfile::tempdir().unwrap();
        assert!(for_node(empty.path(), "pi-alpha", &nodes(), "rpi4")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unknown_keys_settings_nodes_and_wrong_types_are_errors() {
        for (text, needle) in [
            ("[defaults]\nueif = {}\n", "ueif"),
            ("[default]\n", "default"),
            ("[nodes.pi-delta]\n", "pi-delta"),
            ("[defaults]\nuefi = { NoSuch = 1 }\n", "NoSuch"),
            ("[defaults]\nuefi = { FanTemp = 99 }\n", "50..80"),
            (
                "[defaults]\nuefi = { FanTemp = \"60\" }\n",
                "expected an integer",
            ),
            ("[defaults]\nuefi = { AssetTag = 5 }\n", "expected a string"),
            ("[defaults]\nconfig_txt = { \"a b\" = \"1\" }\n", "a b"),
            (
                "[defaults]\nconfig_txt = { x = true }\n",
                "expected a string or an integer",
            ),
            ("[defaults\n", "pi-burn.toml: line 1"),
            (
                &format!(
                    "[defaults]\nuefi = {{ Timeout = {} }}\n",
                    "[".repeat(100_000)
                ),
                "recursion",
            ),
        ] {
            let d = write(text);
            let e = for_node(d.path(), "pi-alpha", &nodes(), "rpi4").unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains(needle), "{text}: {msg}");
            assert!(msg.len() < 600 && !msg.contains('\n'), "one line: {msg}");
            assert_eq!(crate::error::exit_code(&e), 2, "{text}: {msg}");
        }
    }
}
