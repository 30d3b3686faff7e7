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
    /// Where the manifest was read from and its SHA-256 (`None`: the built-in one).
    #[serde(skip)]
    pub source: Option<(String, String)>,
    pub schema: u32,
    pub boards: BTreeMap<String, Board>,
    /// The EEPROM bootloader releases, per board (`pi-burn eeprom`).
    #[serde(default)]
    pub eeprom: BTreeMap<String, EepromBoard>,
}

/// A board's bootloader releases (raspberrypi/rpi-eeprom).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EepromBoard {
    pub description: String,
    /// The release used when none is asked for.
    pub default: String,
    pub releases: Vec<EepromRelease>,
}

/// One bootloader release: its files, each pinned by size and SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EepromRelease {
    /// The release's date, `YYYY-MM-DD` (its name in rpi-eeprom).
    pub date: String,
    /// The rpi-eeprom commit the files are fetched at.
    pub commit: String,
    pub pieeprom: PinnedFile,
    pub recovery: PinnedFile,
    /// The USB 3 controller's firmware (Pi 4 boards with a VL805 EEPROM of their own).
    pub vl805: Option<PinnedFile>,
}

/// A file of a release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    /// Its path in rpi-eeprom.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Where to download it, when not from rpi-eeprom at the commit (a mirror, the tests' server).
    pub url: Option<String>,
}

impl PinnedFile {
    pub fn digest(&self) -> Result<Sha256Digest> {
        Sha256Digest::from_hex(&self.sha256).with_context(|| format!("{}: sha256", self.path))
    }
    /// The download URL: `url`, else the raw file at the release's commit.
    pub fn url(&self, commit: &str) -> String {
        self.url.clone().unwrap_or_else(|| {
            format!(
                "https://github.com/raspberrypi/rpi-eeprom/raw/{commit}/{}",
                self.path
            )
        })
    }
    /// The name it has on a card: the path's last part without the release's date or
    /// version (`pieeprom.bin`, `recovery.bin`, `vl805.bin`).
    pub fn base(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl EepromRelease {
    /// Every pinned file: (role, file).
    pub fn files(&self) -> Vec<(&'static str, &PinnedFile)> {
        let mut v = vec![("pieeprom", &self.pieeprom), ("recovery", &self.recovery)];
        if let Some(f) = &self.vl805 {
            v.push(("vl805", f));
        }
        v
    }
}

impl EepromBoard {
    pub fn release(&self, date: &str) -> Result<&EepromRelease> {
        self.releases
            .iter()
            .find(|r| r.date == date)
            .with_context(|| {
                format!(
                    "no bootloader release {} is pinned (pinned: {})",
                    crate::util::text::printable(date),
                    self.releases
                        .iter()
                        .map(|r| r.date.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
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
    /// Release date, `YYYY-MM-DD`; also the default timestamp of files on the card. A pinned
    /// release has one; a listed one may not be known.
    pub date: Option<String>,
    pub url: String,
    /// SHA-256 of the zip file, hex.
    pub sha256: Option<String>,
    /// Nix fetchzip hash (NAR of the unpacked tree), SRI form.
    pub nar_sha256: Option<String>,
    /// Where the pinned hashes were taken from.
    pub hash_source: Option<String>,
    /// Why this release does not boot from a microSD card (it may from a USB disk's ESP):
    /// `sdcard` refuses it, `ssd --with-firmware` takes it.
    pub not_on_sd: Option<String>,
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

    /// The release date as (year, month, day), when the manifest knows it.
    pub fn ymd(&self) -> Result<Option<(u16, u8, u8)>> {
        self.date
            .as_deref()
            .map(|d| parse_date(d).with_context(|| format!("release {}: date", self.version)))
            .transpose()
    }
}

/// `YYYY-MM-DD` as (year, month, day).
pub fn parse_date(s: &str) -> Result<(u16, u8, u8)> {
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
                let pinned = r
                    .pins()
                    .with_context(|| format!("manifest {origin}: board {name}"))?
                    .is_pinned();
                let date = r
                    .ymd()
                    .with_context(|| format!("manifest {origin}: board {name}"))?;
                if pinned && date.is_none() {
                    bail!(
                        "manifest {origin}: board {name}: release {} is pinned but has no date (the files' timestamp)",
                        r.version
                    );
                }
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
        for (name, b) in &m.eeprom {
            let want = match name.as_str() {
                "rpi4" => 512 << 10,
                "rpi5" => 2 << 20,
                _ => bail!("manifest {origin}: eeprom.{name}: boards are rpi4 and rpi5"),
            };
            for r in &b.releases {
                parse_date(&r.date).with_context(|| format!("manifest {origin}: eeprom.{name}"))?;
                for (role, f) in r.files() {
                    f.digest().with_context(|| {
                        format!("manifest {origin}: eeprom.{name} {} {role}", r.date)
                    })?;
                }
                if r.pieeprom.size != want {
                    bail!(
                        "manifest {origin}: eeprom.{name} {}: pieeprom is {} bytes; a {name} image is {want}",
                        r.date,
                        r.pieeprom.size
                    );
                }
            }
            b.release(&b.default)
                .with_context(|| format!("manifest {origin}: eeprom.{name}: default"))?;
        }
        Ok(m)
    }

    /// A board's bootloader releases.
    pub fn eeprom_board(&self, name: &str) -> Result<&EepromBoard> {
        self.eeprom.get(name).with_context(|| {
            format!(
                "the manifest pins no bootloader for board '{}' (it pins: {})",
                crate::util::text::printable(name),
                self.eeprom.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
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
                let mut m = Self::parse(&text, &p.display().to_string())?;
                m.source = Some((
                    p.display().to_string(),
                    crate::firmware::digest::Sha256Digest::of(text.as_bytes()).hex(),
                ));
                Ok(m)
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
                .max_by_key(|r| r.ymd().unwrap().unwrap())
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
    fn the_embedded_manifest_pins_facts_8_s_bootloader_files() {
        let m = Manifest::embedded();
        let rpi4 = m.eeprom_board("rpi4").unwrap();
        let r = rpi4.release(&rpi4.default).unwrap();
        assert_eq!(r.date, "2026-05-17");
        assert_eq!(
            r.pieeprom.sha256,
            "f1da1bda48c8f19d6eccd94f160a2c8da48fd0acdbfa47f0ac58353208d188c3"
        );
        assert_eq!(r.vl805.as_ref().unwrap().size, 99352);
        assert_eq!(
            r.pieeprom.url(&r.commit),
            "https://github.com/raspberrypi/rpi-eeprom/raw/86759b04b22173e10186139ac3ae4debcd0d7252/firmware-2711/default/pieeprom-2026-05-17.bin"
        );
        let rpi5 = m.eeprom_board("rpi5").unwrap();
        let r5 = rpi5.release(&rpi5.default).unwrap();
        assert_eq!((r5.pieeprom.size, r5.recovery.size), (2 << 20, 105396));
        assert!(r5.vl805.is_none());
        let e = m.eeprom_board("rpi3").unwrap_err().to_string();
        assert!(e.contains("rpi4, rpi5"), "{e}");
    }

    #[test]
    fn the_format_is_pinned_by_a_fixture() {
        let text = include_str!("../../fixtures/manifest-format.toml");
        let m = Manifest::parse(text, "fixture").unwrap();
        let b = m.board("testboard").unwrap();
        assert_eq!(b.default, "v2.0");
        assert_eq!(b.releases.len(), 3);
        let r = b.release("v2.0").unwrap();
        assert_eq!(r.ymd().unwrap(), Some((2025, 11, 21)));
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
