//! One module per subcommand: arguments -> plan -> run.

pub mod devices;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
pub mod meta;
pub mod prompt;
pub mod sdcard;
pub mod ssd;
pub mod verify;

use crate::blockdev::sysfs::{DiskInfo, SysTree};
use crate::blockdev::{inspect_whole_disk, resolve, Resolved};
use crate::cli::{CustomArgs, DiskoArgs, Eval, FirmwareArgs, LayoutArgs, PinArgs, Table};
use crate::cluster::Custom;
use crate::disk::fat::Timestamp;
use crate::disk::geometry::{gpt_type, SdLayout, TableKind};
pub use crate::error::{usage, UsageError};
use crate::firmware::cache::Cache;
use crate::firmware::configtxt::EditApplied;
use crate::firmware::fetch::FetchOptions;
use crate::firmware::manifest::Manifest;
use crate::firmware::uefivars::{Applied, Setting};
use crate::firmware::{obtain, Firmware, Online, Origin, Request};
use crate::progress::Progress;
use crate::ssd::{choose_disk, EvalMode};
use crate::util::units::parse_size;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

/// Options shared by every command.
pub struct Global {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: Box<dyn Progress>,
}

/// Gets (local zip, cache or network) and verifies the firmware named by the arguments.
pub fn load_firmware(args: &FirmwareArgs, g: &Global) -> Result<Firmware> {
    let manifest = Manifest::load(args.pin.manifest.as_deref())?;
    let req = request(&args.pin);
    let origin = match (&args.firmware_zip, &args.firmware_url) {
        (Some(p), _) => Origin::Zip(p.clone()),
        (None, Some(u)) => Origin::Url(u.clone()),
        (None, None) => Origin::Release,
    };
    let cache = Cache::from_env()?;
    let fetch = fetch_options(args);
    let net = Online {
        offline: args.offline,
        fetch: &fetch,
        cache: &cache,
    };
    g.progress.phase("verifying firmware");
    let fw = obtain(&manifest, &req, &origin, &net, g.progress.as_ref())?;
    let (kind, hash) = fw.hash();
    g.progress.phase(&format!(
        "firmware {} {} verified by {kind} ({hash}), from {}",
        fw.board, fw.version, fw.source
    ));
    Ok(fw)
}

pub fn request(args: &PinArgs) -> Request {
    Request {
        board: args.board.clone(),
        version: args.firmware.clone(),
        sha256: args.sha256.map(|s| s.0),
        max_unpacked: args.max_unpacked.0,
    }
}

pub fn fetch_options(args: &FirmwareArgs) -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(args.timeout.max(1)),
        read_timeout: Duration::from_secs(args.timeout.max(1)),
        retries: args.retries,
        max_bytes: u64::MAX,
        total: Duration::from_secs(args.max_time.max(1)),
    }
}

/// The SD card layout the arguments describe, for this firmware.
pub fn sd_layout(args: &LayoutArgs, fw: &Firmware) -> Result<SdLayout> {
    sd_layout_with(args, fw, None)
}

/// As [`sd_layout`], with the node's config when the caller has read it already (`images`
/// reads every node's before fetching the firmware: a flake is not evaluated twice).
pub fn sd_layout_with(
    args: &LayoutArgs,
    fw: &Firmware,
    loaded: Option<&crate::ssd::NodeConfig>,
) -> Result<SdLayout> {
    // An option that does not apply to the chosen table is a mistake, not a no-op.
    match args.table {
        Table::Gpt if args.mbr_type.is_some() => {
            bail!(usage("--mbr-type applies to --table mbr only"))
        }
        Table::Mbr if args.gpt_type.is_some() => {
            bail!(usage("--gpt-type applies to --table gpt only"))
        }
        _ => {}
    }
    let mbr_type = args.mbr_type.map_or(0xef, |t| t.0);
    if args.table == Table::Mbr
        && !matches!(mbr_type, 0xef | 0x0c | 0x0e | 0x0b)
        && !args.allow_unbootable_type
    {
        bail!(usage(format!(
            "--mbr-type 0x{mbr_type:02x}: the Pi boots its firmware from a FAT partition of type 0xef, 0x0c, 0x0e or 0x0b; pass --allow-unbootable-type if you mean it"
        )));
    }
    let sector_size = args.sector_size.map_or(512, |s| s.0);
    // From the node's disko config, or the options, or the cluster's defaults.
    let (name, size, ptype) = match &args.node {
        Some(node) => {
            let owned;
            let cfg = match loaded {
                Some(c) => c,
                None => {
                    owned = load_disko(node, &args.config)?;
                    &owned
                }
            };
            let disk = choose_disk(&cfg.devices, None, true, &cfg.source.describe())?;
            let [p] = disk.partitions.as_slice() else {
                bail!(
                    "disk '{}' of {node}'s config has {} partitions; the firmware card has exactly one",
                    disk.attr,
                    disk.partitions.len()
                );
            };
            // The card's layout is one partition at 1 MiB: exactly what disko's sgdisk makes
            // of `start = "0"`, `end = "+SIZE"`, and nothing else set.
            let unsupported = [
                (p.start != "0", "start"),
                (p.alignment != 0, "alignment"),
                (p.attributes != 0, "attributes"),
                (p.hybrid.is_some(), "hybrid"),
                (p.uuid.is_some(), "uuid"),
            ];
            if let Some((_, opt)) = unsupported.iter().find(|(set, _)| *set) {
                bail!(
                    "the SD card partition '{}' of {node}'s config sets '{opt}', which pi-burn's firmware card layout does not reproduce",
                    crate::ssd::model::short(&p.attr)
                );
            }
            // A bare number is sectors to sgdisk but bytes to --partition-size: a unit is needed.
            let Some(size) = p.end.strip_prefix('+').filter(|s| {
                let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
                !digits.is_empty()
                    && s.len() == digits.len() + 1
                    && digits.chars().all(|c| c.is_ascii_digit())
            }) else {
                bail!(
                    "the SD card partition '{}' of {node}'s config has no fixed size (end '{}')",
                    p.label,
                    p.end
                );
            };
            let size = parse_size(size).with_context(|| {
                format!("the SD card partition '{}' of {node}'s config", p.label)
            })?;
            (p.label.clone(), size, p.type_code.clone())
        }
        None => (
            args.partition_name
                .clone()
                .unwrap_or_else(|| "disk-sdcard-FIRMWARE".into()),
            args.partition_size.map_or(512 << 20, |s| s.0),
            args.gpt_type.clone().unwrap_or_else(|| "EF00".into()),
        ),
    };
    let partition_size = size;
    crate::disk::fat::label_bytes(&args.label).map_err(|e| usage(format!("--label: {e:#}")))?;
    if name.encode_utf16().count() > 36 {
        bail!(usage(format!(
            "--partition-name: '{name}' is longer than GPT's 36 characters"
        )));
    }
    Ok(SdLayout {
        sector_size,
        table: match args.table {
            Table::Gpt => TableKind::Gpt,
            Table::Mbr => TableKind::Mbr,
        },
        mbr_type,
        gpt_type: {
            let g = gpt_type(&ptype).map_err(|e| usage(format!("--gpt-type: {e:#}")))?;
            let bootable = [gpt_type("EF00")?, gpt_type("0700")?];
            if args.table == Table::Gpt && !bootable.contains(&g) && !args.allow_unbootable_type {
                bail!(usage(format!(
                    "partition type {ptype}: the Pi boots its firmware from an EFI System (EF00) or Microsoft basic data (0700) partition under GPT (a Linux type did not boot, pftf/RPi4 #259); pass --allow-unbootable-type if you mean it"
                )));
            }
            g
        },
        partition_size,
        seed: args
            .seed
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}", fw.board, fw.version, name)),
        partition_name: name,
    })
}

/// A node's disko config, as the options say to read it.
pub fn load_disko(node: &str, a: &DiskoArgs) -> Result<crate::ssd::NodeConfig> {
    let mode = match a.eval {
        Eval::Auto => EvalMode::Auto,
        Eval::Builtin => EvalMode::Builtin,
        Eval::Flake => EvalMode::Flake,
        Eval::Nix => EvalMode::Nix,
    };
    crate::ssd::load(
        &a.flake,
        node,
        mode,
        a.disko_json.as_deref(),
        a.builtin_layout.is_some(),
    )
}

/// The image size the arguments ask for, or the layout's default.
pub fn image_size(args: &LayoutArgs, layout: &SdLayout) -> Result<u64> {
    match &args.size {
        Some(s) => Ok(s.0),
        None => Ok(layout.default_image_size()),
    }
}

/// File timestamps: `SOURCE_DATE_EPOCH` when set, else `date` (a release's), else 1980-01-01.
pub fn timestamp(date: Option<(u16, u8, u8)>) -> Result<Timestamp> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH='{v}' is not a number of seconds"))?;
        return Ok(Timestamp::from_unix(secs));
    }
    Ok(match date {
        Some((y, m, d)) => Timestamp::date(y, m, d),
        None => Timestamp::date(1980, 1, 1),
    })
}

/// Resolves and inspects a device argument: a block device, a whole disk.
pub fn device_target(path: &std::path::Path) -> Result<(SysTree, Resolved, DiskInfo)> {
    let t = SysTree::system();
    let r = resolve(path)?;
    let d = inspect_whole_disk(&t, &r)?;
    Ok((t, r, d))
}

/// The layout on a device: the device's sector size (an explicit, different --sector-size is
/// an error) and its whole size (--size is for images).
pub fn layout_for_device(args: &LayoutArgs, fw: &Firmware, d: &DiskInfo) -> Result<SdLayout> {
    if let Some(s) = args.sector_size.map(|s| s.0) {
        if s != d.logical_sector_size {
            bail!(usage(format!(
                "--sector-size {s} does not match {}'s {}-byte sectors (a device's own sector size is always used)",
                d.name, d.logical_sector_size
            )));
        }
    }
    if args.size.is_some() {
        bail!(usage("--size is for image files; a device is used whole"));
    }
    let mut layout = sd_layout(args, fw)?;
    layout.sector_size = d.logical_sector_size;
    Ok(layout)
}

/// The settings and config.txt edits a card gets: `FLAKE/pi-burn.toml`'s for `node` (when
/// given), overridden by the command line's. Checked before any download.
pub fn custom_for(a: &CustomArgs, node: Option<(&Path, &str)>) -> Result<Custom> {
    use crate::cli::{OnOff, SystemTable};
    use crate::firmware::uefivars::settings::{def, Value};
    let mut cli = Custom::default();
    let mut friendly = |flag: &str, name: &str, v: u32| -> Result<()> {
        let d = def(name)?;
        if let Some(s) = a
            .set
            .iter()
            .find(|s| s.def.name == name && s.value != Value::Num(v))
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
    cli.settings.extend(a.set.iter().cloned());
    cli.edits = a.config_txt.clone();
    let base = match node {
        Some((flake, node)) => {
            crate::cluster::for_node(flake, node, &crate::ssd::config::nodes(flake))?
        }
        None => Custom::default(),
    };
    Ok(base.then(cli))
}

/// What was changed in the firmware, for the report and the card record.
#[derive(Debug, Clone, Default)]
pub struct Customised {
    pub uefi: Vec<Applied>,
    pub config_txt: Vec<EditApplied>,
}

/// Applies `c` to the firmware's RPI_EFI.fd and config.txt (before anything is built).
pub fn customise(fw: &mut Firmware, c: &Custom, g: &Global) -> Result<Customised> {
    let mut out = Customised::default();
    if !c.settings.is_empty() {
        if fw.board != "rpi4" {
            bail!(usage(format!(
                "UEFI settings ({}) are Raspberry Pi 4 firmware variables; pi-burn knows none for board {}",
                c.settings[0].from, fw.board
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
            g.progress.phase(&format!(
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
            use crate::firmware::configtxt::EditChange;
            let what = match e.change {
                EditChange::Added => "added",
                EditChange::Replaced => "replaced",
                EditChange::Unchanged => "already so",
            };
            g.progress.phase(&format!(
                "config.txt {}={} ({what}; from {})",
                e.key, e.value, e.from
            ));
        }
        out.config_txt = applied;
    }
    Ok(out)
}

/// Opens a card read-only: the positional device (a whole disk; its page cache dropped) or an
/// --image file. The target's description and the file.
pub fn open_target(
    device: Option<&Path>,
    image: Option<&Path>,
) -> Result<(crate::report::Target, std::fs::File)> {
    use crate::blockdev::sys;
    match (device, image) {
        (Some(dev), _) => {
            let (_, r, _) = device_target(dev)?;
            let f = std::fs::File::open(&r.canonical)
                .with_context(|| format!("opening {}", r.canonical.display()))?;
            let size = sys::size_bytes(&f)
                .with_context(|| format!("reading the size of {}", r.canonical.display()))?;
            // Read what is on the card, not what the page cache remembers.
            sys::drop_cache(&f);
            let t = crate::report::Target {
                kind: "device",
                path: r.canonical.display().to_string(),
                size,
            };
            Ok((t, f))
        }
        (None, Some(path)) => {
            let meta =
                std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?;
            if !meta.is_file() {
                bail!(
                    "{} is not an image file (give a card as the positional DEVICE)",
                    path.display()
                );
            }
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let t = crate::report::Target {
                kind: "image",
                path: path.display().to_string(),
                size: meta.len(),
            };
            Ok((t, f))
        }
        (None, None) => unreachable!("clap requires DEVICE or --image"),
    }
}
