//! `firmware-manifest.toml`: the firmware releases pi-burn knows and how each one is pinned.

use crate::firmware::digest::Sha256Digest;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest compiled into the binary (the repository's `firmware-manifest.toml`).
/// The manifest format this pi-burn reads.
pub const SCHEMA: u32 = 2;

pub const EMBEDDED: &str = include_str!("../../firmware-manifest.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    pub boards: BTreeMap<String, Board>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub description: String,
    /// The version used when none is asked for; must carry a pin.
    pub default: String,
    /// Paths (relative to the zip's root) that every release of this board must contain.
    pub required_files: Vec<String>,
    pub releases: Vec<Release>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// Release date, `YYYY-MM-DD`; also the default timestamp of files on the card.
    pub date: String,
    pub url: String,
    /// SHA-256 of the zip file, hex.
    pub sha256: Option<String>,
    /// Nix fetchzip hash (NAR of the unpacked tree), SRI form.
    pub nar_sha256: Option<String>,
    /// Where the pinned hashes were taken from.
    pub hash_source: Option<String>,
}

/// A release's pins, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pins {
    pub zip: Option<Sha256Digest>,
    pub nar: Option<Sha256Digest>,
}

impl Pins {
    pub fn is_pinned(&self) -> bool {
        self.zip.is_some() || self.nar.is_some()
    }
}

impl Release {
    pub fn pins(&self) -> Result<Pins> {
        let zip = self
            .sha256
            .as_deref()
            .map(Sha256Digest::from_hex)
            .transpose()
            .with_context(|| format!("release {}: sha256", self.version))?;
        let nar = self
            .nar_sha256
            .as_deref()
            .map(Sha256Digest::from_sri)
            .transpose()
            .with_context(|| format!("release {}: nar_sha256", self.version))?;
        Ok(Pins { zip, nar })
    }

    /// The release date as (year, month, day).
    pub fn ymd(&self) -> Result<(u16, u8, u8)> {
        parse_date(&self.date).with_context(|| format!("release {}: date", self.version))
    }
}

fn parse_date(s: &str) -> Result<(u16, u8, u8)> {
    let parts: Vec<&str> = s.split('-').collect();
    let bad = || anyhow::anyhow!("'{s}' is not a date of the form YYYY-MM-DD");
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let y: u16 = parts[0].parse().map_err(|_| bad())?;
    let m: u8 = parts[1].parse().map_err(|_| bad())?;
    let d: u8 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok((y, m, d))
}

impl Manifest {
    /// Parses and checks a manifest: every pin must parse, every default must exist and be pinned.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let m: Manifest =
            toml::from_str(text).with_context(|| format!("reading manifest {origin}"))?;
        if m.schema != SCHEMA {
            bail!(
                "manifest {origin}: schema {} is not supported (this pi-burn reads schema {SCHEMA}; schema 2 dropped gpt_boot_warning: the start4.elf's build date is read from the file)",
                m.schema
            );
        }
        for (name, board) in &m.boards {
            let mut seen = std::collections::BTreeSet::new();
            for r in &board.releases {
                if !seen.insert(r.version.as_str()) {
                    bail!(
                        "manifest {origin}: board {name} lists release {} twice",
                        r.version
                    );
                }
                r.pins()
                    .with_context(|| format!("manifest {origin}: board {name}"))?;
                r.ymd()
                    .with_context(|| format!("manifest {origin}: board {name}"))?;
            }
            let default = board
                .releases
                .iter()
                .find(|r| r.version == board.default)
                .with_context(|| {
                    format!(
                        "manifest {origin}: board {name}: default {} is not among its releases",
                        board.default
                    )
                })?;
            if !default.pins()?.is_pinned() {
                bail!(
                    "manifest {origin}: board {name}: default {} has no pinned hash",
                    board.default
                );
            }
        }
        Ok(m)
    }

    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "(built in)").expect("the built-in manifest is checked by the tests")
    }

    /// The embedded manifest, or the one at `path`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Ok(Self::embedded()),
            Some(p) => {
                let text = crate::util::read_text_limited(p, 1 << 20, "a manifest")
                    .with_context(|| format!("reading manifest {}", p.display()))?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    pub fn board(&self, name: &str) -> Result<&Board> {
        self.boards.get(name).with_context(|| {
            format!(
                "unknown board '{name}' (the manifest knows: {})",
                self.boards.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl Board {
    pub fn release(&self, version: &str) -> Result<&Release> {
        self.releases
            .iter()
            .find(|r| r.version == version)
            .with_context(|| {
                let v = format!("v{version}");
                let hint = if self.releases.iter().any(|r| r.version == v) {
                    format!("; did you mean {v}?")
                } else {
                    String::new()
                };
                format!(
                    "unknown firmware version '{}' (known: {}){hint}",
                    crate::util::text::printable(version),
                    self.releases
                        .iter()
                        .map(|r| r.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    pub fn default_release(&self) -> &Release {
        self.release(&self.default)
            .expect("checked when the manifest was parsed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_manifest_parses_and_defaults_to_the_newest_pinned_release() {
        let m = Manifest::embedded();
        for (name, board) in &m.boards {
            let newest_pinned = board
                .releases
                .iter()
                .filter(|r| r.pins().unwrap().is_pinned())
                .max_by_key(|r| r.ymd().unwrap())
                .unwrap();
            assert_eq!(board.default, newest_pinned.version, "board {name}");
        }
        let rpi4 = m.board("rpi4").unwrap();
        assert_eq!(rpi4.default, "v1.50");
        assert!(rpi4.required_files.iter().any(|f| f == "start4.elf"));
        let v141 = rpi4.release("v1.41").unwrap();
        assert_eq!(
            v141.pins().unwrap().zip.unwrap().hex(),
            "d2a97e36665920dbb5a6aea200e48fc59b1e26cf94a478db7f57833118c2b64a"
        );
        assert!(m.board("rpi5").is_ok());
    }

    #[test]
    fn the_format_is_pinned_by_a_fixture() {
        let text = include_str!("../../fixtures/manifest-format.toml");
        let m = Manifest::parse(text, "fixture").unwrap();
        let b = m.board("testboard").unwrap();
        assert_eq!(b.default, "v2.0");
        assert_eq!(b.releases.len(), 3);
        let r = b.release("v2.0").unwrap();
        assert_eq!(r.ymd().unwrap(), (2025, 11, 21));
        assert!(r.pins().unwrap().zip.is_some());
        assert!(r.pins().unwrap().nar.is_some());
        assert!(!b.release("v0.9").unwrap().pins().unwrap().is_pinned());
    }

    #[test]
    fn a_schema_1_manifest_is_named_as_one() {
        let text =
            include_str!("../../fixtures/manifest-format.toml").replace("schema = 2", "schema = 1");
        let err = format!("{:#}", Manifest::parse(&text, "old").unwrap_err());
        assert!(
            err.contains("schema 1") && err.contains("gpt_boot_warning"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_an_error() {
        let text = include_str!("../../fixtures/manifest-format.toml").replace(
            "hash_source = \"fixture\"",
            "hash_source = \"fixture\"\nsha512 = \"x\"",
        );
        let err = format!("{:#}", Manifest::parse(&text, "fixture").unwrap_err());
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn an_unpinned_default_is_an_error() {
        let text = include_str!("../../fixtures/manifest-format.toml")
            .replace("default = \"v2.0\"", "default = \"v0.9\"");
        let err = format!("{:#}", Manifest::parse(&text, "fixture").unwrap_err());
        assert!(err.contains("no pinned hash"), "{err}");
    }

    #[test]
    fn bad_pins_and_dates_are_errors() {
        let text = include_str!("../../fixtures/manifest-format.toml")
            .replace("date = \"2025-11-21\"", "date = \"21.11.2025\"");
        assert!(Manifest::parse(&text, "fixture").is_err());
        let text = include_str!("../../fixtures/manifest-format.toml")
            .replace("nar_sha256 = \"sha256-", "nar_sha256 = \"md5-");
        assert!(Manifest::parse(&text, "fixture").is_err());
    }
}
