//! Option values converted once, by clap, into the types the core uses: a malformed value is a
//! usage error (exit 2) before anything else runs.

use crate::firmware::digest::Sha256Digest;
use crate::util::units::parse_size;
use std::str::FromStr;

/// A size in bytes: a number with an optional K, M, G or T (powers of 1024) or KB, MB, GB, TB
/// (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Size).map_err(|e| format!("{e:#}"))
    }
}

/// A logical sector size pi-burn writes: 512 or 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectorSize(pub u64);

impl FromStr for SectorSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u64>() {
            Ok(n @ (512 | 4096)) => Ok(SectorSize(n)),
            _ => Err(format!(
                "'{s}' is not a supported sector size (512 or 4096)"
            )),
        }
    }
}

/// An MBR partition type byte that can hold the firmware partition (not 0, not 0xEE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbrType(pub u8);

impl FromStr for MbrType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match crate::util::text::hex(t, false, 2) {
            Some(0) | Some(0xee) => Err(format!("{t} cannot hold the firmware partition")),
            Some(b) => Ok(MbrType(b as u8)),
            None => Err(format!(
                "'{t}' is not a partition type byte (e.g. 0xef or 0x0c)"
            )),
        }
    }
}

/// A SHA-256 in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Arg(pub Sha256Digest);

impl FromStr for Sha256Arg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Sha256Digest::from_hex(s.trim())
            .map(Sha256Arg)
            .map_err(|e| format!("{e:#}"))
    }
}

impl clap::ValueEnum for crate::disk::geometry::TableKind {
    fn value_variants<'a>() -> &'a [Self] {
        use crate::disk::geometry::TableKind;
        &[TableKind::Gpt, TableKind::Mbr]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl clap::ValueEnum for crate::ssd::EvalMode {
    fn value_variants<'a>() -> &'a [Self] {
        use crate::ssd::EvalMode;
        &[
            EvalMode::Auto,
            EvalMode::Builtin,
            EvalMode::Flake,
            EvalMode::Nix,
        ]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use crate::ssd::EvalMode;
        Some(clap::builder::PossibleValue::new(match self {
            EvalMode::Auto => "auto",
            EvalMode::Builtin => "builtin",
            EvalMode::Flake => "flake",
            EvalMode::Nix => "nix",
        }))
    }
}

/// `--set NAME=VALUE`: its form here; the name and the value against the --board's firmware
/// (its table, its ranges) in the job, before anything is read or downloaded.
pub fn parse_assignment(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((name, _)) if !name.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!(
            "'{s}': expected NAME=VALUE (e.g. RamLimitTo3GB=0, Pcie1Settings.MaxLinkSpeed=3)"
        )),
    }
}

/// `--config-txt KEY=VALUE`.
pub fn parse_config_txt(s: &str) -> Result<crate::firmware::configtxt::Edit, String> {
    crate::firmware::configtxt::parse_edit(s, "--config-txt").map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_once_with_clear_errors() {
        assert_eq!("512M".parse::<Size>().unwrap(), Size(512 << 20));
        assert!("12X".parse::<Size>().unwrap_err().contains("unknown unit"));
        assert_eq!("4096".parse::<SectorSize>().unwrap(), SectorSize(4096));
        assert!("1000"
            .parse::<SectorSize>()
            .unwrap_err()
            .contains("512 or 4096"));
        assert_eq!("0x0c".parse::<MbrType>().unwrap(), MbrType(0x0c));
        assert_eq!("ef".parse::<MbrType>().unwrap(), MbrType(0xef));
        assert!("0xee".parse::<MbrType>().is_err());
        assert!("zz".parse::<MbrType>().is_err());
        assert!("abc".parse::<Sha256Arg>().is_err());
    }
}
