//! The firmware SD card as a job: its target, firmware, layout, settings and node, every
//! option checked once; then the card built in memory for the target it goes to.

use super::custom::{customise, Customised};
use super::firmware::FirmwareJob;
use super::target::{DeviceOpts, TargetSpec};
use crate::cli::{LayoutArgs, SdcardArgs};
use crate::cluster::Custom;
use crate::disk::geometry::{gpt_type, DiskPlan, SdLayout, TableKind};
use crate::disk::record::{self, CardRecord, Inputs};
use crate::error::usage;
use crate::firmware::Firmware;
use crate::progress::Progress;
use crate::report::{FileReport, Report};
use crate::ssd::{choose_disk, NodeConfig};
use crate::util::units::{human, parse_size};
use crate::write::Target;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The card's layout, every option checked; only the seed's default waits for the firmware.
#[derive(Debug, Clone)]
pub struct CardLayout {
    pub table: TableKind,
    pub mbr_type: u8,
    pub gpt_type: Uuid,
    /// An image's sector size (a device's own is always used).
    pub sector_size: Option<u64>,
    /// An image's size (a device is used whole).
    pub size: Option<u64>,
    pub partition_size: u64,
    pub partition_name: String,
    pub label: String,
    pub seed: Option<String>,
    /// A GPT card with a start4.elf from before 2025-01-16 is made anyway.
    pub allow_old_start4: bool,
    /// The partition's GUID, when the node's config pins it (`uuid`): disko's install keeps a
    /// pinned one, and sets a new random one otherwise.
    pub partition_guid: Option<Uuid>,
}

/// The node a card is for: its name and the flake holding its config and pi-burn.toml.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub name: String,
    pub flake: PathBuf,
}

/// The one partition of a node's SD card disk: (label, size, type code, pinned GUID). The
/// card's layout is one partition at 1 MiB: exactly what disko's sgdisk makes of `start = "0"`,
/// `end = "+SIZE"`, with `uuid` when the config pins one, and nothing else set.
fn node_partition(cfg: &NodeConfig) -> Result<(String, u64, String, Option<Uuid>)> {
    let node = &cfg.node;
    let disk = choose_disk(&cfg.devices, None, true, &cfg.source.describe())?;
    let [p] = disk.partitions.as_slice() else {
        bail!(
            "disk '{}' of {node}'s config has {} partitions; the firmware card has exactly one",
            disk.attr,
            disk.partitions.len()
        );
    };
    let unsupported = [
        (p.start != "0", "start"),
        (p.alignment != 0, "alignment"),
        (p.attributes != 0, "attributes"),
        (p.hybrid.is_some(), "hybrid"),
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
    let size = parse_size(size)
        .with_context(|| format!("the SD card partition '{}' of {node}'s config", p.label))?;
    Ok((p.label.clone(), size, p.type_code.clone(), p.uuid))
}

impl CardLayout {
    /// The layout the options describe, with the node's partition (`cfg`) when given.
    pub fn new(l: &LayoutArgs, cfg: Option<&NodeConfig>) -> Result<Self> {
        // An option that does not apply to the chosen table is a mistake, not a no-op.
        let table = l.table.unwrap_or(TableKind::Gpt);
        match table {
            TableKind::Gpt if l.mbr_type.is_some() => {
                bail!(usage("--mbr-type applies to --table mbr only"))
            }
            TableKind::Mbr if l.gpt_type.is_some() => {
                bail!(usage("--gpt-type applies to --table gpt only"))
            }
            _ => {}
        }
        if let (Some(cfg), TableKind::Mbr) = (cfg, table) {
            bail!(usage(format!(
                "--table mbr with --node {}: the node's config describes a GPT card and NixOS mounts /boot/firmware by its GPT partition name, which an MBR card does not have; leave --node out for an MBR card",
                cfg.node
            )));
        }
        let (name, partition_size, code, partition_guid) = match cfg {
            Some(cfg) => node_partition(cfg)?,
            None => (
                l.partition_name
                    .clone()
                    .unwrap_or_else(|| "disk-sdcard-FIRMWARE".into()),
                l.partition_size.map_or(512 << 20, |s| s.0),
                l.gpt_type.clone().unwrap_or_else(|| "EF00".into()),
                None,
            ),
        };
        let layout = CardLayout {
            table,
            mbr_type: l.mbr_type.map_or(0xef, |t| t.0),
            gpt_type: gpt_type(&code).map_err(|e| usage(format!("--gpt-type: {e:#}")))?,
            sector_size: l.sector_size.map(|s| s.0),
            size: l.size.map(|s| s.0),
            partition_size,
            partition_name: name,
            label: l.label.clone().unwrap_or_else(|| "FIRMWARE".into()),
            seed: l.seed.clone(),
            allow_old_start4: l.allow_old_start4,
            partition_guid,
        };
        layout.check(&code, l.allow_unbootable_type)?;
        Ok(layout)
    }

    /// A node's card as `images` makes it: its config's partition, every other option at its
    /// default.
    pub fn for_node(cfg: &NodeConfig) -> Result<Self> {
        let (name, partition_size, code, partition_guid) = node_partition(cfg)?;
        let layout = CardLayout {
            table: TableKind::Gpt,
            mbr_type: 0xef,
            gpt_type: gpt_type(&code).map_err(|e| usage(format!("--gpt-type: {e:#}")))?,
            sector_size: None,
            size: None,
            partition_size,
            partition_name: name,
            label: "FIRMWARE".into(),
            seed: None,
            allow_old_start4: false,
            partition_guid,
        };
        layout.check(&code, false)?;
        Ok(layout)
    }

    /// What every layout must be: a FAT label, a GPT name, a partition type the Pi's boot
    /// loader reads its firmware from (unless `allow_unbootable`), whole sectors.
    fn check(&self, type_code: &str, allow_unbootable: bool) -> Result<()> {
        crate::disk::fat::label_bytes(&self.label).map_err(|e| usage(format!("--label: {e:#}")))?;
        let name = &self.partition_name;
        if crate::util::text::printable(name) != *name {
            bail!(usage(format!(
                "--partition-name '{}': control or direction characters do not belong in a GPT name",
                crate::util::text::printable(name)
            )));
        }
        if name.encode_utf16().count() > 36 {
            bail!(usage(format!(
                "--partition-name: '{name}' is longer than GPT's 36 characters"
            )));
        }
        let mbr_type = self.mbr_type;
        match self.table {
            _ if allow_unbootable => {}
            TableKind::Mbr if !matches!(mbr_type, 0xef | 0x0c | 0x0e | 0x0b) => bail!(usage(format!(
                "--mbr-type 0x{mbr_type:02x}: the Pi boots its firmware from a FAT partition of type 0xef, 0x0c, 0x0e or 0x0b; pass --allow-unbootable-type if you mean it"
            ))),
            TableKind::Gpt if self.gpt_type != gpt_type("EF00")? && self.gpt_type != gpt_type("0700")? => bail!(usage(format!(
                "partition type {type_code}: the Pi boots its firmware from an EFI System (EF00) or Microsoft basic data (0700) partition under GPT (a Linux type did not boot, pftf/RPi4 #259); pass --allow-unbootable-type if you mean it"
            ))),
            _ => {}
        }
        if let Some(ss) = self.sector_size {
            if !self.partition_size.is_multiple_of(ss) {
                bail!(usage(format!(
                    "--partition-size {} is not a multiple of the {ss}-byte sector size",
                    self.partition_size
                )));
            }
        }
        Ok(())
    }

    /// The layout on a disk with `sector_size`-byte sectors, for this firmware and node: the
    /// default seed names the board, the release, the partition and the node, so two nodes'
    /// cards never share a GUID or volume id.
    pub fn sd_layout(&self, fw: &Firmware, sector_size: u64, node: Option<&str>) -> SdLayout {
        let seed = self.seed.clone().unwrap_or_else(|| {
            crate::disk::geometry::default_seed(&fw.board, &fw.version, &self.partition_name, node)
        });
        SdLayout {
            sector_size,
            table: self.table,
            mbr_type: self.mbr_type,
            gpt_type: self.gpt_type,
            partition_size: self.partition_size,
            partition_name: self.partition_name.clone(),
            seed,
            partition_guid: self.partition_guid,
        }
    }
}

/// The firmware card to make.
#[derive(Debug, Clone)]
pub struct CardJob {
    pub target: TargetSpec,
    pub firmware: FirmwareJob,
    pub layout: CardLayout,
    pub custom: Custom,
    pub node: Option<NodeRef>,
    pub device: DeviceOpts,
    /// What the user should hear about the node's config or the record it is made from.
    pub notices: Vec<String>,
    /// The record the card is made from, when nothing overrides it: the new card's files must
    /// be the ones it lists.
    pub from_record: Option<CardRecord>,
}

/// A node's disko config, as the options say to read it.
pub fn load_disko(node: &str, a: &crate::cli::DiskoArgs) -> Result<NodeConfig> {
    crate::ssd::load(
        &a.flake,
        node,
        a.eval,
        a.disko_json.as_deref(),
        a.builtin_layout.is_some(),
    )
}

/// The record of the card or card image at `path`, and what its firmware changed on it since
/// it was burned (its variable store, after a boot).
fn record_at(path: &Path) -> Result<(CardRecord, Vec<String>)> {
    use std::os::unix::fs::FileTypeExt;
    let dev = std::fs::metadata(path)
        .with_context(|| format!("--from-record {}", path.display()))?
        .file_type()
        .is_block_device();
    let mut t = super::target::ReadTarget::open(dev.then_some(path), (!dev).then_some(path))?;
    let size = t.size();
    let origin = format!("--from-record {}", path.display());
    let r = crate::media::card_record(crate::media::identify(&mut t.file, size), &origin)?;
    let changes = crate::disk::cardcheck::check(&mut t.file, size, r.clone(), &origin)
        .map(|c| c.changes)
        .unwrap_or_default();
    Ok((r, changes))
}

/// What a record gives the layout, with the options given beside `--from-record` over it.
fn layout_from_record(
    r: &CardRecord,
    l: &LayoutArgs,
    overrides: &mut Vec<String>,
) -> Result<CardLayout> {
    let t = &r.table;
    let mut given = |flag: &str, what: String| overrides.push(format!("{flag} {what}"));
    let table = match (l.table, t.kind.as_str()) {
        (Some(k), _) => {
            given("--table", k.name().into());
            k
        }
        (None, "mbr") => TableKind::Mbr,
        (None, "gpt") => TableKind::Gpt,
        (None, other) => bail!(
            "--from-record: the record's table kind '{}' is neither gpt nor mbr",
            crate::util::text::printable(other)
        ),
    };
    if !matches!(t.sector_size, 512 | 4096) {
        bail!(
            "--from-record: the record's sector size {} is neither 512 nor 4096",
            t.sector_size
        );
    }
    let sectors = t
        .last_lba
        .checked_sub(t.first_lba)
        .and_then(|n| n.checked_add(1))
        .and_then(|n| n.checked_mul(t.sector_size))
        .context("--from-record: the record's partition is an impossible range")?;
    let partition_size = match l.partition_size {
        Some(s) => {
            given("--partition-size", s.0.to_string());
            s.0
        }
        None => sectors,
    };
    let (gpt, mbr) = match t.part_type.strip_prefix("0x") {
        Some(_) => (
            gpt_type("EF00")?,
            crate::util::text::hex(&t.part_type, true, 2)
                .context("--from-record: the record's MBR type is not a type byte")?
                as u8,
        ),
        None => (
            gpt_type(&t.part_type).context("--from-record: the record's partition type")?,
            0xef,
        ),
    };
    if l.gpt_type.is_some() || l.mbr_type.is_some() || l.partition_name.is_some() {
        given(
            "--gpt-type/--mbr-type/--partition-name",
            "(see the plan)".into(),
        );
    }
    let layout = CardLayout {
        table,
        mbr_type: l.mbr_type.map_or(mbr, |m| m.0),
        gpt_type: match &l.gpt_type {
            Some(c) => gpt_type(c).map_err(|e| usage(format!("--gpt-type: {e:#}")))?,
            None => gpt,
        },
        sector_size: l.sector_size.map(|s| s.0).or(Some(t.sector_size)),
        size: l.size.map(|s| s.0).or(Some(t.disk_bytes)),
        partition_size,
        partition_name: l.partition_name.clone().unwrap_or_else(|| t.name.clone()),
        label: l.label.clone().unwrap_or_else(|| t.label.clone()),
        seed: l.seed.clone().or_else(|| r.seed.clone()),
        allow_old_start4: l.allow_old_start4,
        partition_guid: t
            .partition_guid
            .as_deref()
            .map(|g| Uuid::parse_str(g).context("--from-record: the record's partition GUID"))
            .transpose()?,
    };
    let code = layout.gpt_type.to_string();
    layout.check(&code, l.allow_unbootable_type)?;
    Ok(layout)
}

impl CardJob {
    /// `--from-record CARD`: the card its record describes, the options given beside it over
    /// the record's values (named in `overrides`).
    fn from_record(a: &SdcardArgs, path: &Path) -> Result<Self> {
        let (r, changed) = record_at(path)?;
        let origin = format!("the record of {}", path.display());
        let mut overrides = vec![];
        // The firmware: the record's release, pinned by the record's zip hash.
        let mut fa = a.firmware.clone();
        if fa.pin.board.as_deref().is_some_and(|b| b != r.board) {
            overrides.push(format!(
                "--board {}",
                fa.pin.board.clone().unwrap_or_default()
            ));
        }
        fa.pin.board.get_or_insert(r.board.clone());
        let same_release = fa.pin.firmware.is_none() && fa.pin.sha256.is_none();
        if same_release {
            if !r.firmware.version.starts_with("custom-") {
                fa.pin.firmware = Some(r.firmware.version.clone());
            }
            fa.pin.sha256 = Some(crate::cli::Sha256Arg(
                crate::firmware::digest::Sha256Digest::from_hex(&r.firmware.zip_sha256)
                    .with_context(|| format!("{origin}: its zip sha256"))?,
            ));
        } else {
            overrides.push("--firmware/--sha256".into());
        }
        let firmware = FirmwareJob::from_args(&fa)?;
        let target = TargetSpec::of_card(&a.target)?;
        let mut layout = layout_from_record(&r, &a.layout, &mut overrides)?;
        if target.is_device() {
            // A device is used whole with its own sector size.
            layout.size = None;
            layout.sector_size = a.layout.sector_size.map(|s| s.0);
        }
        if super::custom::names_any(&a.custom) {
            overrides.push("--set/--config-txt (see the plan)".into());
        }
        let base = super::custom::from_record(&r, &origin)?;
        let custom = super::custom::with_base(&a.custom, firmware.board(), base)?;
        let mut notices = vec![format!(
            "--from-record {}: {} card{}, firmware {} {}, its table, settings and edits",
            path.display(),
            crate::util::text::printable(&r.board),
            r.node
                .as_deref()
                .map(|n| format!(" for {}", crate::util::text::printable(n)))
                .unwrap_or_default(),
            crate::util::text::printable(&r.board),
            crate::util::text::printable(&r.firmware.version)
        )];
        for o in &overrides {
            notices.push(format!("notice: {o} overrides the record's value"));
        }
        if !changed.is_empty() {
            notices.push(format!(
                "notice: the firmware changed {} since it was burned ({}); the new card gets the values its record names, as burned",
                path.display(),
                changed.iter().map(|c| crate::util::text::printable(c)).collect::<Vec<_>>().join("; ")
            ));
        }
        if let (TargetSpec::Image { .. }, None, Some(size)) = (&target, a.layout.size, layout.size)
        {
            notices.push(format!(
                "notice: the image is {}, the size of the card the record was made from (--size chooses another)",
                crate::util::units::human(size)
            ));
        }
        Ok(CardJob {
            target,
            firmware,
            layout,
            custom,
            node: r.node.clone().map(|name| NodeRef {
                name,
                flake: PathBuf::new(),
            }),
            device: DeviceOpts::from_args(&a.device_opts),
            notices,
            from_record: overrides.is_empty().then_some(r),
        })
    }

    pub fn from_args(a: &SdcardArgs) -> Result<Self> {
        if let Some(p) = &a.from_record {
            return Self::from_record(a, p);
        }
        let target = TargetSpec::of_card(&a.target)?;
        if target.is_device() && a.layout.size.is_some() {
            bail!(usage("--size is for image files; a device is used whole"));
        }
        let firmware = FirmwareJob::from_args(&a.firmware)?;
        let cfg = match &a.layout.node {
            Some(n) => Some(load_disko(n, &a.layout.config)?),
            None => None,
        };
        let layout = CardLayout::new(&a.layout, cfg.as_ref())?;
        let node = a.layout.node.as_ref().map(|n| NodeRef {
            name: n.clone(),
            flake: a.layout.config.flake.clone(),
        });
        let custom = super::custom::custom(
            &a.custom,
            firmware.board(),
            node.as_ref().map(|n| (n.flake.as_path(), n.name.as_str())),
        )?;
        let mut notices = vec![];
        if let Some(cfg) = &cfg {
            notices.extend(cfg.notices.clone());
            // The node's NixOS config against the card it gets: before anything is written.
            let d = crate::doctor::diagnose(
                cfg,
                &a.layout.config.flake,
                &custom,
                firmware.board(),
                &layout.label,
                &firmware.manifest,
            );
            crate::doctor::gate(&d, a.layout.config.allow_config_errors, &mut notices)?;
        }
        Ok(CardJob {
            target,
            firmware,
            layout,
            custom,
            node,
            device: DeviceOpts::from_args(&a.device_opts),
            notices,
            from_record: None,
        })
    }

    pub fn node_name(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.name.as_str())
    }

    /// The disk's size and sector size on `target`: a device's own (an explicit, different
    /// `--sector-size` is a usage error), or the image's.
    pub fn geometry(&self, target: &Target) -> Result<(u64, u64)> {
        match target.device_geometry() {
            Some((size, ss)) => {
                if let Some(s) = self.layout.sector_size.filter(|s| *s != ss) {
                    bail!(usage(format!(
                        "--sector-size {s} does not match {}'s {ss}-byte sectors (a device's own sector size is always used)",
                        target.path().display()
                    )));
                }
                Ok((size, ss))
            }
            None => {
                let ss = self.layout.sector_size.unwrap_or(512);
                let size = self.layout.size.unwrap_or(
                    crate::disk::geometry::PARTITION_START
                        + self.layout.partition_size
                        + crate::util::units::MIB,
                );
                Ok((size, ss))
            }
        }
    }

    fn check_start4(&self, fw: &Firmware, table: TableKind, progress: &dyn Progress) -> Result<()> {
        check_start4(fw, table, self.layout.allow_old_start4, progress)
    }

    /// Customises `fw` and builds the card for `target` in memory (nothing is written); the
    /// card's record joins the firmware's files.
    pub fn build(
        &self,
        fw: &mut Firmware,
        target: &Target,
        progress: &dyn Progress,
    ) -> Result<Card> {
        let (size, ss) = self.geometry(target)?;
        if let Some(why) = not_on_sd(&self.firmware.manifest, fw) {
            bail!(usage(format!(
                "firmware {} {} does not boot from a microSD card ({why}): choose another release (--firmware), or put it on the node's SSD (pi-burn ssd --node NODE --with-firmware)",
                fw.board, fw.version
            )));
        }
        let customised = customise(fw, &self.custom, progress)?;
        let layout = self.layout.sd_layout(fw, ss, self.node_name());
        let plan = layout
            .plan(size)
            .with_context(|| target.path().display().to_string())?;
        self.check_start4(fw, plan.table, progress)?;
        let mut rec = CardRecord::new(
            &Inputs {
                fw,
                node: self.node_name(),
                uefi: &customised.uefi,
                config_txt: &customised.config_txt,
                label: &self.layout.label,
                seed: self.layout.seed.as_deref(),
                manifest: self.firmware.manifest.source.as_ref(),
            },
            &plan,
            &fw.files,
        );
        if let Some(g) = self.layout.partition_guid {
            rec.table.partition_guid = Some(g.to_string().to_uppercase());
            progress.phase(&format!(
                "partition 1's GUID {} is the one the node's config pins (uuid): disko's install keeps it",
                g.to_string().to_uppercase()
            ));
        }
        if let Some(old) = &self.from_record {
            // The same inputs give the same card: every file as the old record lists it.
            let differ: Vec<&str> = rec
                .files
                .iter()
                .filter(|f| !old.files.contains(f))
                .map(|f| f.path.as_str())
                .chain(
                    old.files
                        .iter()
                        .filter(|f| !rec.files.iter().any(|n| n.path == f.path))
                        .map(|f| f.path.as_str()),
                )
                .collect();
            if !differ.is_empty() {
                bail!(
                    "--from-record: the firmware and settings give other files than the card's record lists ({}): nothing was written",
                    differ.join(", ")
                );
            }
        }
        record::add_to(&mut fw.files, &rec)?;
        // The files as the report lists them: the record's hashes, and the record itself.
        let mut files: Vec<FileReport> = rec
            .files
            .iter()
            .map(|f| FileReport {
                path: f.path.clone(),
                size: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect();
        let bytes = rec.to_bytes();
        files.push(FileReport {
            path: record::PATH.into(),
            size: bytes.len() as u64,
            sha256: crate::firmware::digest::Sha256Digest::of(&bytes).hex(),
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let label = self.layout.label.clone();
        progress.phase(&format!("building {}", plan_line(&plan, &layout, &label)));
        let built = crate::disk::card::build_sdcard(
            &plan,
            &fw.files,
            &label,
            &layout.seed,
            super::timestamp(fw.date)?,
        )?;
        Ok(Card {
            plan,
            layout,
            label,
            built,
            files,
            customised,
        })
    }
}

/// A card built in memory, with what the report and the plan say of it.
pub struct Card {
    pub plan: DiskPlan,
    pub layout: SdLayout,
    pub label: String,
    built: crate::disk::card::BuiltCard,
    pub files: Vec<FileReport>,
    pub customised: Customised,
}

pub use crate::disk::card::BuiltCard;

impl Card {
    pub fn built(&self) -> &BuiltCard {
        &self.built
    }

    /// "514 MiB gpt table; partition 1 at sector 2048, 512 MiB, name '...', FAT32 'FIRMWARE'".
    pub fn plan_line(&self) -> String {
        plan_line(&self.plan, &self.layout, &self.label)
    }

    /// The report of this card on `target` (bytes written to be filled in).
    pub fn report(&self, fw: &Firmware, target: &Target) -> Report {
        let mut r = Report::new(
            crate::report::Target::of(target, self.plan.size),
            &self.plan,
        )
        .with_firmware_files(fw, self.files.clone());
        r.filesystem = Some(self.built().fat.clone());
        r.uefi_settings = self.customised.uefi.clone();
        r.config_txt = self.customised.config_txt.clone();
        r
    }

    /// The card as a burn of `target`: its plan, report and result lines.
    pub fn burn(self, fw: &Firmware, target: &Target, device: &DeviceOpts) -> crate::job::Burn {
        let report = self.report(fw, target);
        let files = fw.files.file_count() - 1;
        let (board, version) = (fw.board.clone(), fw.version.clone());
        let mut plan = vec![format!(
            "will write:  {}; firmware {board} {version} ({files} files and the card record); {}",
            self.plan_line(),
            match target {
                Target::Device(_) => format!(
                    "{} to write, table last",
                    human(crate::write::target::planned_bytes(&self.built.disk))
                ),
                Target::Image(_) => format!(
                    "{} of data, sparse, with its block map",
                    human(self.built.disk.written_bytes())
                ),
            }
        )];
        plan.extend(self.customised.plan_lines());
        let path = target.path().display().to_string();
        let (size, table, payload) = (
            human(self.plan.size),
            self.plan.table.name(),
            human(fw.files.payload_bytes()),
        );
        let image = matches!(target, Target::Image(_));
        crate::job::Burn {
            image: self.built.disk,
            plan,
            report,
            options: device.write_options(),
            done: Box::new(move |d| {
                vec![if image {
                    format!(
                        "{path}: {size} {table} image, firmware {board} {version} ({files} files and the card record, {payload}), {} written",
                        human(d.bytes_written)
                    )
                } else {
                    format!(
                        "{path}: burned firmware {board} {version}: {} written{}",
                        human(d.bytes_written),
                        if d.bytes_read_back.is_some() {
                            ", read back and verified"
                        } else {
                            ""
                        }
                    )
                }]
            }),
            next: vec![],
        }
    }
}

/// The plan of a card in one line (see [`Card::plan_line`]).
fn plan_line(plan: &DiskPlan, layout: &SdLayout, label: &str) -> String {
    format!(
        "{} ({} bytes) {} table; partition 1 at sector {}, {}, {}FAT32 '{}'",
        human(plan.size),
        plan.size,
        plan.table.name(),
        plan.partitions[0].first_lba,
        human(layout.partition_size),
        if plan.table == TableKind::Gpt {
            format!("name '{}', ", layout.partition_name)
        } else {
            String::new()
        },
        label.to_ascii_uppercase()
    )
}

/// The card job `images` makes for a node: the node's layout and settings, defaults for the
/// rest, into `image`.
pub fn for_node(
    cfg: &NodeConfig,
    flake: &Path,
    custom: Custom,
    firmware: FirmwareJob,
    image: PathBuf,
    force: bool,
) -> Result<CardJob> {
    Ok(CardJob {
        target: TargetSpec::Image { path: image, force },
        firmware,
        layout: CardLayout::for_node(cfg)?,
        custom,
        node: Some(NodeRef {
            name: cfg.node.clone(),
            flake: flake.to_path_buf(),
        }),
        device: DeviceOpts::default(),
        notices: vec![],
        from_record: None,
    })
}

/// Why the manifest says `fw`'s release does not boot from a microSD card, when it says so.
pub fn not_on_sd(manifest: &crate::firmware::manifest::Manifest, fw: &Firmware) -> Option<String> {
    manifest
        .board(&fw.board)
        .ok()?
        .releases
        .iter()
        .find(|r| r.version == fw.version)?
        .not_on_sd
        .clone()
}

/// A GPT disk whose start4.elf was built before the fix does not boot under EEPROM 2025-02-11
/// or newer (rpi-eeprom #668): refused unless an MBR card or `allow_old` (--allow-old-start4).
/// A start4.elf without build strings is a warning, not a pass.
pub fn check_start4(
    fw: &Firmware,
    table: TableKind,
    allow_old: bool,
    progress: &dyn Progress,
) -> Result<()> {
    if fw.files.file("start4.elf").is_none() {
        return Ok(());
    }
    let Some(b) = &fw.start4 else {
        progress.notice(&format!(
            "warning: the start4.elf of {} {} carries no build date: pi-burn cannot tell whether a GPT card boots with an EEPROM of 2025-02-11 or newer (rpi-eeprom #668; a start4.elf from 2025-01-16 on does)",
            fw.board, fw.version
        ));
        return Ok(());
    };
    progress.phase(&format!(
        "start4.elf built {}{}",
        b.date,
        b.version
            .as_deref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default()
    ));
    if b.before_gpt_fix() && table == TableKind::Gpt && !allow_old {
        bail!(usage(format!(
            "the start4.elf of {} {} was built {}, before 2025-01-16: with an EEPROM of 2025-02-11 or newer a GPT card with it does not boot (rpi-eeprom #668); use --table mbr, a release v1.42 or newer, or --allow-old-start4 for a board with an older EEPROM",
            fw.board, fw.version, b.date
        )));
    }
    Ok(())
}
