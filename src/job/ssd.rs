//! A node's USB SSD as a job: its config read, its disk chosen, every option checked; then
//! the disk built in memory as disko's own commands make it (the build that knows disko).

use super::target::{DeviceOpts, TargetSpec};
use crate::cli::SsdArgs;
use crate::disk::card::{Formatted, FAT32_MIN, PARTITION_WIPE};
use crate::disk::fat::{build_fat32, FatSpec, Timestamp};
use crate::disk::geometry::{gpt_type_code, DiskPlan, PartType, PartitionPlan};
use crate::disk::sparse::SparseImage;
use crate::disk::table::write_table;
use crate::error::usage;
use crate::firmware::fileset::FileSet;
use crate::ssd::{choose_disk, ConfigSource, DiskoDisk, DiskoPart, NodeConfig};
use crate::util::ids::derive_u32;
use crate::util::units::human;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// The SSD to prepare.
#[derive(Debug, Clone)]
pub struct SsdJob {
    pub node: String,
    pub flake: PathBuf,
    pub source: ConfigSource,
    pub disk: DiskoDisk,
    /// The disk as the config gives it (`disko.devices.disk.<attr>`), for an image's block
    /// map: flash lays the same disk out on a larger device from it.
    pub disk_raw: serde_json::Value,
    pub seed: String,
    /// Format the vfat partitions disko's mkfs.vfat would make FAT32.
    pub format: bool,
    pub target: TargetSpec,
    /// An image's size and sector size.
    pub image_size: Option<u64>,
    pub sector_size: u64,
    pub device: DeviceOpts,
    /// What the user should hear about the node's config.
    pub notices: Vec<String>,
    /// How the node is installed onto what pi-burn writes (none for images).
    pub handoff: Option<crate::ssd::install::Handoff>,
    /// The firmware for the ESP (`--with-firmware`, or pi-burn.toml's `ssd_firmware`).
    pub firmware: Option<SsdFirmware>,
}

/// The firmware an SSD's ESP gets, and the node's settings and edits for it.
#[derive(Debug, Clone)]
pub struct SsdFirmware {
    pub job: super::firmware::FirmwareJob,
    pub custom: crate::cluster::Custom,
}

/// The firmware in an SSD's ESP, as the report and the plan say it.
pub struct EspFirmware {
    pub files: Vec<crate::report::FileReport>,
    pub customised: super::custom::Customised,
}

impl SsdJob {
    pub fn from_args(a: &SsdArgs) -> Result<Self> {
        let cfg = super::card::load_disko(&a.node, &a.config)?;
        let disk = choose_disk(
            &cfg.devices,
            a.disk.as_deref(),
            false,
            &cfg.source.describe(),
        )?;
        let target = match (&a.device, &a.image) {
            (_, Some(image)) => TargetSpec::Image {
                path: image.clone(),
                force: a.force,
            },
            (Some(d), None) => TargetSpec::Device(d.clone()),
            (None, None) => TargetSpec::Device(configured_device(&disk, &cfg, a)?),
        };
        let sector_size = a.sector_size.map_or(512, |s| s.0);
        if let (TargetSpec::Image { .. }, Some(size)) = (&target, a.size) {
            if !size.0.is_multiple_of(sector_size) {
                bail!(usage(format!(
                    "--size: {} is not a multiple of the {sector_size}-byte sector size",
                    size.0
                )));
            }
        }
        let mut notices = cfg.notices.clone();
        let firmware = ssd_firmware(a, &cfg, &mut notices)?;
        let handoff = crate::doctor::handoff(&cfg, &a.config.flake, None);
        if !matches!(
            cfg.source,
            ConfigSource::Json(_) | ConfigSource::BuiltinDefault
        ) {
            // The node's NixOS config against the media it gets: before anything is written.
            let hosts = crate::ssd::config::nodes(&a.config.flake);
            let mut custom =
                crate::cluster::Cluster::load(&a.config.flake, &hosts, "rpi4")?.for_node(&a.node);
            if firmware.is_some() {
                // The doctor checks the node with its firmware where this run puts it.
                custom.ssd_firmware = Some((true, "--with-firmware".into()));
            }
            let manifest = crate::firmware::manifest::Manifest::embedded();
            let d = crate::doctor::diagnose(
                &cfg,
                &a.config.flake,
                &custom,
                "rpi4",
                "FIRMWARE",
                &manifest,
            );
            crate::doctor::gate(&d, a.config.allow_config_errors, &mut notices)?;
        }
        Ok(SsdJob {
            firmware,
            seed: a
                .seed
                .clone()
                .unwrap_or_else(|| format!("{}/{}", a.node, disk.name)),
            node: a.node.clone(),
            flake: a.config.flake.clone(),
            disk_raw: cfg.devices["disk"][&disk.attr].clone(),
            handoff: Some(handoff),
            notices,
            source: cfg.source,
            disk,
            format: !a.no_format,
            target,
            image_size: a.size.map(|s| s.0),
            sector_size,
            device: DeviceOpts::from_args(&a.device_opts),
        })
    }

    /// The SSD job `images` makes for a node: its image of `size` bytes at `image`.
    pub fn for_node(
        cfg: &NodeConfig,
        flake: &std::path::Path,
        size: Option<u64>,
        image: PathBuf,
        force: bool,
        firmware: Option<SsdFirmware>,
    ) -> Result<Self> {
        let origin = cfg.source.describe();
        let disk = choose_disk(&cfg.devices, None, false, &origin)?;
        let size = match (size, &disk.image_size) {
            (Some(s), _) => s,
            (None, Some(s)) => crate::util::units::parse_size(s)
                .with_context(|| format!("imageSize '{s}' of disk '{}' in {origin}", disk.name))?,
            (None, None) => 2 << 30,
        };
        if !size.is_multiple_of(512) {
            bail!(usage(format!(
                "{}: SSD image size {size} is not a multiple of 512 bytes",
                cfg.node
            )));
        }
        Ok(SsdJob {
            seed: format!("{}/{}", cfg.node, disk.name),
            node: cfg.node.clone(),
            flake: flake.to_path_buf(),
            source: cfg.source.clone(),
            disk_raw: cfg.devices["disk"][&disk.attr].clone(),
            notices: cfg.notices.clone(),
            handoff: None,
            firmware,
            disk,
            format: true,
            target: TargetSpec::Image { path: image, force },
            image_size: Some(size),
            sector_size: 512,
            device: DeviceOpts::default(),
        })
    }

    /// The disk's size and sector size on `target`.
    pub fn geometry(&self, target: &crate::write::Target) -> (u64, u64) {
        target
            .device_geometry()
            .unwrap_or((self.image_size.unwrap_or(0), self.sector_size))
    }

    /// What the block map of this SSD's image carries: the disk, how its GUIDs are seeded, its
    /// sector size and node, so that `flash` can lay it out on a larger device as disko would.
    pub fn described(&self, sector_size: u64) -> String {
        serde_json::json!({
            "node": self.node,
            "seed": self.seed,
            "sector_size": sector_size,
            "attr": self.disk.attr,
            "disk": self.disk_raw,
        })
        .to_string()
    }

    /// The write options for `target`: an image's block map describes the disk.
    pub fn write_options(&self, target: &crate::write::Target) -> crate::write::Options {
        crate::write::Options {
            bmap_disk: match target {
                crate::write::Target::Image(_) => Some(self.described(self.sector_size)),
                crate::write::Target::Device(_) => None,
            },
            ..self.device.write_options()
        }
    }

    /// The plan on `target` and the disk built in memory (nothing is written).
    pub fn build(
        &self,
        target: &crate::write::Target,
        fw: Option<&mut crate::firmware::Firmware>,
        progress: &dyn crate::progress::Progress,
    ) -> Result<BuiltSsd> {
        let (size, ss) = self.geometry(target);
        let plan = crate::ssd::plan(&self.disk, size, ss, &self.seed)
            .with_context(|| target.path().display().to_string())?;
        let (esp, date) = match (&self.firmware, fw) {
            (Some(f), Some(fw)) => {
                let files = self.esp_files(f, fw, &plan, progress)?;
                (Some(files), fw.date)
            }
            (Some(_), None) => bail!("internal: the SSD's firmware was not obtained"),
            (None, _) => (None, None),
        };
        let (img, formatted, left) = build_ssd(
            &plan,
            &self.disk,
            self.format,
            &self.seed,
            super::timestamp(date)?,
            esp.as_ref().map(|(files, _)| files),
        )?;
        if let (Some(f), true) = (formatted.first(), esp.is_some()) {
            // The bootloader reads a FAT32 of fewer clusters as FAT16 on GPT (rpi-eeprom #818).
            if f.fat.clusters < 65525 {
                bail!(usage(format!(
                    "{}'s ESP (partition 1) is a FAT32 of {} clusters: the bootloader reads one under 65,525 as FAT16 and does not boot it (rpi-eeprom #818); make the partition larger",
                    self.node, f.fat.clusters
                )));
            }
        }
        Ok(BuiltSsd {
            plan,
            img,
            formatted,
            left,
            firmware: esp.map(|(_, e)| e),
        })
    }

    /// The ESP's files: the firmware customised with the node's settings and edits, and its
    /// record (partition 1 of `plan`, the SSD's other partitions named in it). Refused when
    /// partition 1 is not the vfat partition pi-burn formats.
    fn esp_files(
        &self,
        f: &SsdFirmware,
        fw: &mut crate::firmware::Firmware,
        plan: &DiskPlan,
        progress: &dyn crate::progress::Progress,
    ) -> Result<(FileSet, EspFirmware)> {
        use crate::disk::record::{self, CardRecord, Inputs, RecSsd};
        let (Some(first), Some(part)) = (plan.partitions.first(), self.disk.partitions.first())
        else {
            bail!(usage(format!(
                "{}: disk '{}' has no partitions: the firmware needs partition 1 as the FAT32 ESP",
                self.node, self.disk.name
            )));
        };
        match format_decision(first, part, plan.sector_size) {
            Some(Ok(())) if self.format => {}
            Some(Err(why)) => bail!(usage(format!(
                "{}: the firmware needs partition 1 as the FAT32 ESP pi-burn formats, and {why}",
                self.node
            ))),
            _ => bail!(usage(format!(
                "{}: partition 1 of disk '{}' ({}) is no vfat partition: the bootloader reads the firmware from the first FAT partition, and pi-burn puts it only on partition 1 (the ESP first, as the cluster's layout has it)",
                self.node, self.disk.name, first.name
            ))),
        }
        super::card::check_start4(fw, plan.table, false, progress)?;
        let customised = super::custom::customise(fw, &f.custom, progress)?;
        let mut rec = CardRecord::new(
            &Inputs {
                fw,
                node: Some(&self.node),
                uefi: &customised.uefi,
                config_txt: &customised.config_txt,
                label: crate::disk::fat::NO_LABEL,
                seed: Some(&self.seed),
                manifest: f.job.manifest.source.as_ref(),
            },
            plan,
            &fw.files,
        );
        rec.table.ssd = Some(RecSsd::of(plan, &self.disk.name));
        if let Some(u) = part.uuid {
            rec.table.partition_guid = Some(u.to_string().to_uppercase());
        }
        record::add_to(&mut fw.files, &rec)?;
        let mut files: Vec<crate::report::FileReport> = rec
            .files
            .iter()
            .map(|r| crate::report::FileReport {
                path: r.path.clone(),
                size: r.bytes,
                sha256: r.sha256.clone(),
            })
            .collect();
        let bytes = rec.to_bytes();
        files.push(crate::report::FileReport {
            path: record::PATH.into(),
            size: bytes.len() as u64,
            sha256: crate::firmware::digest::Sha256Digest::of(&bytes).hex(),
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((fw.files.clone(), EspFirmware { files, customised }))
    }
}

/// Whether a firmware flag was given (they only make sense with --with-firmware).
fn firmware_flag(a: &SsdArgs) -> Option<&'static str> {
    let (f, c) = (&a.firmware, &a.custom);
    [
        (f.firmware_zip.is_some(), "--firmware-zip"),
        (f.firmware_url.is_some(), "--firmware-url"),
        (f.pin.board.is_some(), "--board"),
        (f.pin.firmware.is_some(), "--firmware"),
        (f.pin.sha256.is_some(), "--sha256"),
        (!c.set.is_empty(), "--set"),
        (!c.config_txt.is_empty(), "--config-txt"),
        (c.ram_limit_3gb.is_some(), "--ram-limit-3gb"),
        (c.system_table.is_some(), "--system-table"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

/// The firmware the SSD's ESP gets: with `--with-firmware`, or when pi-burn.toml says
/// `ssd_firmware = true` for the node; its settings and edits as a card's (pi-burn.toml, then
/// the flags). The bootloader must try USB: a BOOT_ORDER in pi-burn.toml's `eeprom` without it
/// is refused, none at all is a warning.
fn ssd_firmware(
    a: &SsdArgs,
    cfg: &NodeConfig,
    notices: &mut Vec<String>,
) -> Result<Option<SsdFirmware>> {
    let firmware = super::firmware::FirmwareJob::from_args(&a.firmware)?;
    let board = firmware.board().to_string();
    let hosts = crate::ssd::config::nodes(&a.config.flake);
    let toml = if a.config.flake.is_dir() {
        crate::cluster::Cluster::load(&a.config.flake, &hosts, &board)?.for_node(&cfg.node)
    } else {
        crate::cluster::Custom::default()
    };
    let wanted = match (a.with_firmware, &toml.ssd_firmware) {
        (true, _) => true,
        (false, Some((true, from))) => {
            notices.push(format!(
                "notice: the firmware goes on {}'s SSD ({from} = true)",
                cfg.node
            ));
            true
        }
        _ => false,
    };
    if !wanted {
        if let Some(flag) = firmware_flag(a) {
            bail!(usage(format!(
                "{flag} is for the firmware in the SSD's ESP: add --with-firmware (or ssd_firmware = true in pi-burn.toml)"
            )));
        }
        return Ok(None);
    }
    check_boot_order(&cfg.node, &toml.bootconf, notices)?;
    let custom = super::custom::with_base(&a.custom, &board, toml)?;
    Ok(Some(SsdFirmware {
        job: firmware,
        custom,
    }))
}

/// A node that boots from its SSD needs a bootloader that tries USB mass storage (BOOT_ORDER
/// nibbles, read from the lowest: 4 USB-MSD, 5 BCM-USB-MSD; e stops, f starts again; the
/// bootloader's documentation of BOOT_ORDER).
pub fn check_boot_order(
    node: &str,
    bootconf: &[crate::firmware::configtxt::Edit],
    notices: &mut Vec<String>,
) -> Result<()> {
    let Some(e) = bootconf.iter().find(|e| e.key == "BOOT_ORDER") else {
        notices.push(format!(
            "warning: pi-burn.toml gives {node} no eeprom BOOT_ORDER: pi-burn cannot tell whether its bootloader tries USB (the default 0xf41 does; an EEPROM card with BOOT_ORDER = 0xf14 tries USB first)"
        ));
        return Ok(());
    };
    let v = e.value.trim();
    // The value was checked as BOOT_ORDER when pi-burn.toml was read (eeprom::bootconf).
    let tries_usb = crate::util::text::hex(v, true, 8).is_some_and(|n| {
        (0..8)
            .map(|i| (n >> (4 * i)) & 0xf)
            .take_while(|d| *d != 0xe)
            .any(|d| d == 4 || d == 5)
    });
    if !tries_usb {
        bail!(usage(format!(
            "{node}: BOOT_ORDER = {v} (from {}) never tries USB mass storage (4 or 5 before a stop): a node whose firmware is on its SSD would not boot; add 4, e.g. 0xf14",
            e.from
        )));
    }
    Ok(())
}

/// The configured device of the disk when it exists here; otherwise a refusal that lists the
/// candidates and the command to name one (with the flags given).
fn configured_device(disk: &DiskoDisk, cfg: &NodeConfig, a: &SsdArgs) -> Result<PathBuf> {
    let again = format!(
        "name the disk: pi-burn ssd --node {}{} /dev/sdX",
        a.node,
        if a.config.flake.as_os_str() == "." {
            String::new()
        } else {
            format!(" --flake {}", a.config.flake.display())
        }
    );
    match &disk.device {
        Some(d) if std::path::Path::new(d).exists() => Ok(d.into()),
        Some(d) => bail!(
            "the configured device {d} of disk '{}' is not attached here; {}; {again}",
            disk.name,
            candidates()
        ),
        None => bail!(
            "disk '{}' of {}'s config names no device; {}; {again}",
            disk.name,
            cfg.node,
            candidates()
        ),
    }
}

/// Candidate disks, for an error when the configured device is not here.
fn candidates() -> String {
    use crate::blockdev::sysfs;
    let t = crate::blockdev::sysfs::SysTree::system();
    let mut out = vec![];
    for dev in sysfs::list_disks(&t) {
        let Ok(d) = sysfs::inspect(&t, dev) else {
            continue;
        };
        let free = crate::blockdev::blockers(&t, &d, crate::blockdev::Allow::default())
            .is_ok_and(|b| b.is_empty());
        if free {
            out.push(format!(
                "/dev/{} ({}, {}, {})",
                d.name,
                d.model_text(),
                crate::util::units::human(d.size),
                d.transport
            ));
        }
    }
    if out.is_empty() {
        "no disk here is free to write".into()
    } else {
        format!("candidates: {}", out.join(", "))
    }
}

/// An SSD built in memory.
pub struct BuiltSsd {
    pub plan: DiskPlan,
    pub img: SparseImage,
    pub formatted: Vec<Formatted>,
    /// Why a vfat partition was left for disko to format.
    pub left: Vec<String>,
    /// The firmware in the ESP, when it has one.
    pub firmware: Option<EspFirmware>,
}

/// Whether pi-burn formats a partition as disko would, or why it leaves it for disko.
pub fn format_decision(p: &PartitionPlan, part: &DiskoPart, ss: u64) -> Option<Result<(), String>> {
    let c = &part.content;
    if c.kind.as_deref() != Some("filesystem") || c.format.as_deref() != Some("vfat") {
        return None;
    }
    if !c.extra_args.is_empty() {
        return Some(Err(format!(
            "partition {} ({}) left unformatted: disko formats it with mkfs.vfat {}",
            p.number,
            p.name,
            c.extra_args.join(" ")
        )));
    }
    if p.sectors() * ss < FAT32_MIN {
        return Some(Err(format!(
            "partition {} ({}) left unformatted: below 512 MiB mkfs.vfat makes FAT16, which disko will do",
            p.number, p.name
        )));
    }
    Some(Ok(()))
}

/// The SSD in memory: every partition's ends wiped, FAT32 on the vfat partitions that disko's
/// mkfs.vfat would make FAT32 (unless `format` is false), the GPT. Also returns why any vfat
/// partition was left for disko.
pub fn build_ssd(
    plan: &DiskPlan,
    disk: &DiskoDisk,
    format: bool,
    seed: &str,
    timestamp: Timestamp,
    esp: Option<&FileSet>,
) -> Result<(SparseImage, Vec<Formatted>, Vec<String>)> {
    let empty = FileSet::new();
    let mut img = SparseImage::new(plan.size);
    let ss = plan.sector_size;
    for p in &plan.partitions {
        let start = p.first_lba * ss;
        let len = p.sectors() * ss;
        let w = PARTITION_WIPE.min(len);
        img.zero_range(start, w)?;
        img.zero_range(start + len - w, w)?;
    }
    let mut formatted = vec![];
    let mut left = vec![];
    if format {
        for (p, d) in plan.partitions.iter().zip(&disk.partitions) {
            match format_decision(p, d, ss) {
                None => {}
                Some(Err(why)) => left.push(why),
                Some(Ok(())) => {
                    let spec = FatSpec {
                        label: None,
                        volume_id: derive_u32(seed, &format!("fat-volume-id-{}", p.name)),
                        timestamp,
                        sector_size: ss,
                        hidden_sectors: p.first_lba,
                    };
                    // The firmware goes in partition 1 (checked by the caller); the others
                    // are formatted empty, as disko's mkfs.vfat leaves them.
                    let files = match esp {
                        Some(f) if p.number == 1 => f,
                        _ => &empty,
                    };
                    let fat =
                        build_fat32(&mut img, p.first_lba * ss, p.sectors() * ss, files, &spec)
                            .with_context(|| format!("partition {} ({})", p.number, p.name))?;
                    formatted.push(Formatted {
                        partition: p.number,
                        label: p.name.clone(),
                        fat,
                    });
                }
            }
        }
    }
    write_table(plan, &mut img)?;
    Ok((img, formatted, left))
}

fn hybrid_text(plan: &DiskPlan, disk: &DiskoDisk) -> String {
    let Some(entries) = &plan.hybrid_mbr else {
        return String::new();
    };
    let mut s = format!(
        "  hybrid MBR ({}):\n",
        if disk.efi_gpt_partition_first {
            "0xEE entry first"
        } else {
            "0xEE entry last"
        }
    );
    for (i, e) in entries.iter().enumerate() {
        s.push_str(&format!(
            "{:>3} {:>13} {:>13}  0x{:02x}{}\n",
            i + 1,
            e.first_lba,
            e.first_lba as u64 + e.sectors as u64 - 1,
            e.mbr_type,
            if e.bootable { "  bootable" } else { "" }
        ));
    }
    s
}

fn table_text(plan: &DiskPlan) -> String {
    let mut s = String::from("  #  start sector    end sector        size  type  name\n");
    for p in &plan.partitions {
        let code = match p.part_type {
            PartType::Gpt(g) => gpt_type_code(&g)
                .map(str::to_string)
                .unwrap_or_else(|| g.to_string().to_uppercase()),
            PartType::Mbr(t) => format!("0x{t:02x}"),
        };
        s.push_str(&format!(
            "{:>3} {:>13} {:>13} {:>11}  {code}  {}\n",
            p.number,
            p.first_lba,
            p.last_lba,
            human(p.sectors() * plan.sector_size),
            if p.attributes != 0 {
                format!("{}  attributes 0x{:016x}", p.name, p.attributes)
            } else {
                p.name.clone()
            }
        ));
    }
    s
}

/// What the success line may claim: the table is disko's only when every rule pi-burn applied
/// is one disko's own script follows.
fn provenance(source: &ConfigSource, disk: &DiskoDisk) -> String {
    let from = source.describe();
    let hybrid = disk.partitions.iter().any(|p| p.hybrid.is_some());
    if hybrid && disk.efi_gpt_partition_first {
        format!("as disko's options describe them (from {from}); the hybrid MBR with the 0xEE entry first is what efiGptPartitionFirst means, not what disko's own script does (it fails there, see README)")
    } else {
        format!("as disko's gpt.nix and sgdisk make them (from {from})")
    }
}

impl SsdJob {
    /// The plan's lines: the table on the image or the device, what is formatted.
    fn plan_lines(&self, target: &crate::write::Target, built: &BuiltSsd) -> Vec<String> {
        let plan = &built.plan;
        let mut s = match target {
            crate::write::Target::Image(p) => format!(
                "{} disk '{}' on {}, {} ({} bytes):\n{}",
                self.node,
                self.disk.name,
                p.display(),
                human(plan.size),
                plan.size,
                table_text(plan)
            ),
            crate::write::Target::Device(_) => format!(
                "will write:  {}'s disk '{}': GPT, {} each end of every partition wiped, {}\n{}",
                self.node,
                self.disk.name,
                human(PARTITION_WIPE),
                if built.formatted.is_empty() {
                    "nothing formatted".to_string()
                } else {
                    format!(
                        "FAT32 on partition {}",
                        built
                            .formatted
                            .iter()
                            .map(|f| f.partition.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                table_text(plan)
            ),
        };
        s.push_str(&hybrid_text(plan, &self.disk));
        vec![s.trim_end().to_string()]
    }

    /// What to do after the SSD is written: boot from the card, install keeping what pi-burn
    /// wrote (nixos-anywhere's default mode with destroy = false on the prepared disks).
    fn next_steps(&self) -> Vec<String> {
        let Some(h) = &self.handoff else {
            return vec![];
        };
        let boot = match &self.firmware {
            Some(_) => format!(
                "with this SSD attached (its ESP holds the firmware), boot {} from a NixOS installer on a USB stick, picked in the firmware's boot menu (Esc at the logo)",
                self.node
            ),
            None => format!("boot {} from its SD card into a NixOS installer", self.node),
        };
        let mut v = vec![format!("next: {boot}, then {}", h.lines().join("\n"))];
        if matches!(self.source, ConfigSource::Json(_)) {
            v.push(
                "(a --disko-json config names no flake: install with the flake it came from)"
                    .into(),
            );
        }
        v
    }

    /// The SSD as a burn of `target` (`fw`: the firmware in its ESP, when it has one).
    pub fn burn(
        &self,
        target: &crate::write::Target,
        built: BuiltSsd,
        fw: Option<&crate::firmware::Firmware>,
    ) -> crate::job::Burn {
        let mut plan = self.plan_lines(target, &built);
        let mut report = crate::report::Report::new(
            crate::report::Target::of(target, built.plan.size),
            &built.plan,
        );
        report.filesystems = built.formatted.clone();
        let mut firmware = String::new();
        if let (Some(e), Some(fw)) = (built.firmware, fw) {
            let count = e.files.len() - 1;
            plan.push(format!(
                "             the ESP (partition 1) holds firmware {} {} ({count} files and the card record): the node boots from this SSD, no SD card",
                fw.board, fw.version
            ));
            plan.extend(e.customised.plan_lines());
            firmware = format!(
                "; firmware {} {} ({count} files and the card record) in its ESP",
                fw.board, fw.version
            );
            report = report.with_firmware_files(fw, e.files);
            report.uefi_settings = e.customised.uefi;
            report.config_txt = e.customised.config_txt;
        }
        let line = format!(
            "{}: {} partitions written {}: {}{firmware}",
            target.path().display(),
            report.partitions.len(),
            provenance(&self.source, &self.disk),
            report
                .partitions
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::job::Burn {
            image: built.img,
            plan,
            report,
            options: self.write_options(target),
            done: Box::new(move |_| vec![line.clone()]),
            next: self.next_steps(),
        }
    }
}
