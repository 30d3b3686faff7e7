//! One module per subcommand: arguments -> plan -> run.

pub mod meta;
pub mod sdcard;
pub mod verify;

use crate::cli::{FirmwareArgs, LayoutArgs, Table};
use crate::digest::Sha256Digest;
use crate::fat::Timestamp;
use crate::firmware::{verify_zip, Firmware, Request};
use crate::layout::{gpt_type, parse_size, SdLayout, TableKind};
use crate::manifest::Manifest;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};

/// Options shared by every command.
pub struct Global {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: Box<dyn Progress>,
}

/// A wrong command line found after parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Loads and verifies the firmware named by the arguments.
pub fn load_firmware(args: &FirmwareArgs, g: &Global) -> Result<Firmware> {
    let manifest = Manifest::load(args.manifest.as_deref())?;
    let max_unpacked =
        parse_size(&args.max_unpacked).map_err(|e| usage(format!("--max-unpacked: {e:#}")))?;
    let sha256 = args
        .sha256
        .as_deref()
        .map(Sha256Digest::from_hex)
        .transpose()
        .map_err(|e| usage(format!("--sha256: {e:#}")))?;
    let req = Request {
        board: args.board.clone(),
        version: args.firmware.clone(),
        sha256,
        max_unpacked,
    };
    let Some(zip_path) = &args.firmware_zip else {
        bail!(usage("no firmware given: pass --firmware-zip PATH (the release zip of the board's UEFI firmware)"));
    };
    let origin = zip_path.display().to_string();
    g.progress.phase(&format!("verifying firmware {origin}"));
    let meta = std::fs::metadata(zip_path).with_context(|| format!("reading {origin}"))?;
    if !meta.is_file() {
        bail!("{origin} is not a regular file");
    }
    if meta.len() > max_unpacked {
        bail!("{origin} is larger than the --max-unpacked limit of {max_unpacked} bytes");
    }
    let zip = std::fs::read(zip_path).with_context(|| format!("reading {origin}"))?;
    g.progress.phase("firmware read");
    let fw = verify_zip(&manifest, &req, &zip, &origin)?;
    let (kind, hash) = fw.hash();
    g.progress.phase(&format!(
        "firmware {} {} verified ({kind:?} {hash})",
        fw.board, fw.version
    ));
    Ok(fw)
}

/// The SD card layout the arguments describe, for this firmware.
pub fn sd_layout(args: &LayoutArgs, fw: &Firmware) -> Result<SdLayout> {
    let mbr_type = {
        let t = args.mbr_type.trim();
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u8::from_str_radix(h, 16),
            None => u8::from_str_radix(t, 16),
        };
        parsed.map_err(|_| {
            usage(format!(
                "--mbr-type: '{t}' is not a partition type byte (e.g. 0xef or 0x0c)"
            ))
        })?
    };
    if mbr_type == 0 || mbr_type == 0xee {
        bail!(usage(format!(
            "--mbr-type: 0x{mbr_type:02x} cannot hold the firmware partition"
        )));
    }
    if args.sector_size != 512 && args.sector_size != 4096 {
        bail!(usage(format!(
            "--sector-size: {} is not supported (512 or 4096)",
            args.sector_size
        )));
    }
    let partition_size =
        parse_size(&args.partition_size).map_err(|e| usage(format!("--partition-size: {e:#}")))?;
    crate::fat::label_bytes(&args.label).map_err(|e| usage(format!("--label: {e:#}")))?;
    if args.partition_name.encode_utf16().count() > 36 {
        bail!(usage(format!(
            "--partition-name: '{}' is longer than GPT's 36 characters",
            args.partition_name
        )));
    }
    Ok(SdLayout {
        sector_size: args.sector_size,
        table: match args.table {
            Table::Gpt => TableKind::Gpt,
            Table::Mbr => TableKind::Mbr,
        },
        mbr_type,
        gpt_type: gpt_type(&args.gpt_type).map_err(|e| usage(format!("--gpt-type: {e:#}")))?,
        partition_size,
        partition_name: args.partition_name.clone(),
        seed: args
            .seed
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}", fw.board, fw.version, args.partition_name)),
    })
}

/// The image size the arguments ask for, or the layout's default.
pub fn image_size(args: &LayoutArgs, layout: &SdLayout) -> Result<u64> {
    match &args.size {
        Some(s) => parse_size(s).map_err(|e| usage(format!("--size: {e:#}"))),
        None => Ok(layout.default_image_size()),
    }
}

/// File timestamps: `SOURCE_DATE_EPOCH` when set, else the release date, else 1980-01-01.
pub fn timestamp(fw: &Firmware) -> Result<Timestamp> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH='{v}' is not a number of seconds"))?;
        return Ok(Timestamp::from_unix(secs));
    }
    Ok(match fw.date {
        Some((y, m, d)) => Timestamp::date(y, m, d),
        None => Timestamp::date(1980, 1, 1),
    })
}
