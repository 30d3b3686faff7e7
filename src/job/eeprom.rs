//! `eeprom`: the flags as one job, every check before anything is read from the network or a
//! device; the release's files from local paths, the cache or rpi-eeprom (each verified
//! against its pin); the card built in memory.

use crate::cli::EepromArgs;
use crate::disk::geometry::{esp_type, DiskPlan, SdLayout, TableKind};
use crate::disk::record::{RecFile, RecTable};
use crate::eeprom::record::{EepromRecord, RecProperty};
use crate::eeprom::{self, bootconf, Edited, ReleaseFiles, Soc};
use crate::error::usage;
use crate::firmware::cache::Cache;
use crate::firmware::configtxt::{self, Edit};
use crate::firmware::digest::Sha256Digest;
use crate::firmware::fetch::FetchOptions;
use crate::firmware::manifest::{EepromRelease, Manifest, PinnedFile};
use crate::job::target::{DeviceOpts, TargetSpec};
use crate::progress::Progress;
use crate::report::FileReport;
use crate::write::Target;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The largest local bootloader file read (a Pi 5 image is 2 MiB).
const MAX_FILE: u64 = 8 << 20;

/// Local files given instead of the release's downloads.
#[derive(Debug, Clone, Default)]
pub struct Local {
    pub pieeprom: Option<PathBuf>,
    pub recovery: Option<PathBuf>,
    pub vl805: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EepromJob {
    pub target: TargetSpec,
    pub device: DeviceOpts,
    pub board: String,
    pub soc: Soc,
    pub manifest: Manifest,
    pub release: EepromRelease,
    pub local: Local,
    /// bootconf.txt properties in the order they apply (later ones win).
    pub edits: Vec<Edit>,
    pub node: Option<String>,
    /// An image's size.
    pub size: Option<u64>,
    pub offline: bool,
    pub fetch: FetchOptions,
}

/// The properties pi-burn.toml gives `node` (or the defaults alone).
fn toml_edits(flake: &Path, node: Option<&str>, board: &str) -> Result<Vec<Edit>> {
    let nodes = crate::ssd::config::nodes(flake);
    if let Some(n) = node {
        crate::ssd::config::check_node(flake, n, &nodes)?;
    }
    let cluster = crate::cluster::Cluster::load(flake, &nodes, board)?;
    Ok(match node {
        Some(n) => cluster.for_node(n).bootconf,
        None => cluster.defaults().bootconf,
    })
}

/// Every pinned file of the manifest: (board, date, role, file).
fn all_pins(m: &Manifest) -> Vec<(String, String, &'static str, &PinnedFile)> {
    let mut v = vec![];
    for (board, b) in &m.eeprom {
        for r in &b.releases {
            for (role, f) in r.files() {
                v.push((board.clone(), r.date.clone(), role, f));
            }
        }
    }
    v
}

/// Checks local `bytes` (from `path`) as the `role` file `want` of `board`'s `date`: refused,
/// naming what it is when it is another pinned file, or that it matches no pin.
fn check_local(
    m: &Manifest,
    path: &Path,
    bytes: &[u8],
    role: &str,
    want: &PinnedFile,
    board: &str,
    date: &str,
) -> Result<()> {
    let sha = Sha256Digest::of(bytes);
    if sha.hex() == want.sha256 && bytes.len() as u64 == want.size {
        return Ok(());
    }
    let p = path.display();
    if let Some((b, d, r, _)) = all_pins(m).into_iter().find(|x| x.3.sha256 == sha.hex()) {
        let hint = if b != board {
            format!("; --board {b}")
        } else if r == role {
            format!("; --release {d}")
        } else {
            format!(
                "; give it as --{}-file",
                if r == "pieeprom" { "eeprom" } else { r }
            )
        };
        bail!(
            "{p} is the {b} {d} {r} file, not {board} {date}'s {role}: nothing was written{hint}"
        );
    }
    if role == "pieeprom" {
        // Say what it is when it is an EEPROM image at all (another board's, a custom build).
        if let Ok(img) = eeprom::EepromImage::parse(bytes.to_vec(), &p.to_string()) {
            if let Some(soc) = Soc::of_board(board) {
                img.check_soc(soc, &p.to_string())?;
            }
        }
    }
    bail!(
        "{p} matches no pinned {role} file (sha256 {sha}, {} bytes; {board} {date}'s is {} bytes, sha256 {}): pi-burn writes only pinned bootloader files, nothing was written",
        bytes.len(),
        want.size,
        want.sha256
    )
}

impl EepromJob {
    pub fn from_args(a: &EepromArgs) -> Result<Self> {
        let board = a.board.clone().unwrap_or_else(|| "rpi4".into());
        let Some(soc) = Soc::of_board(&board) else {
            bail!(usage(format!(
                "--board {}: the EEPROM boards are rpi4 (BCM2711) and rpi5 (BCM2712)",
                crate::util::text::printable(&board)
            )));
        };
        // The properties first: a misspelt one is a usage error before any file is read.
        let mut edits = if a.node.is_some() || a.flake.join(crate::cluster::FILE).exists() {
            toml_edits(&a.flake, a.node.as_deref(), &board)?
        } else {
            vec![]
        };
        for b in &a.bootconf {
            edits.push(bootconf::parse_edit(b, &board, "--bootconf")?);
        }
        if let Some(list) = &a.boot_order {
            let v = bootconf::boot_order_from_names(list)?;
            if let Some(e) = a
                .bootconf
                .iter()
                .filter_map(|b| b.split_once('='))
                .find(|(k, _)| k.trim() == "BOOT_ORDER")
            {
                if bootconf::boot_order(e.1).ok().as_deref() != Some(v.as_str()) {
                    bail!(usage(format!(
                        "--boot-order {list} ({v}) and --bootconf BOOT_ORDER={} disagree: give one",
                        e.1.trim()
                    )));
                }
            }
            edits.push(bootconf::edit("BOOT_ORDER", &v, &board, "--boot-order")?);
        }
        let edits = configtxt::merge(edits);
        crate::disk::record::check_count(
            edits.len(),
            crate::disk::record::MAX_PROPERTIES,
            "bootconf properties",
            "the properties given",
        )
        .map_err(|e| usage(format!("{e:#}")))?;
        let manifest = Manifest::load(a.manifest.as_deref())?;
        let eb = manifest.eeprom_board(&board)?;
        let local = Local {
            pieeprom: a.eeprom_file.clone(),
            recovery: a.recovery_file.clone(),
            vl805: a.vl805_file.clone(),
        };
        let release = match (&a.release, &local.pieeprom) {
            (Some(d), _) => eb.release(d)?.clone(),
            // A local image names its release by its hash.
            (None, Some(p)) => {
                let bytes = crate::util::read_limited(p, MAX_FILE, "an EEPROM image")?;
                let sha = Sha256Digest::of(&bytes).hex();
                match eb.releases.iter().find(|r| r.pieeprom.sha256 == sha) {
                    Some(r) => r.clone(),
                    None => {
                        let d = eb.release(&eb.default)?;
                        check_local(
                            &manifest,
                            p,
                            &bytes,
                            "pieeprom",
                            &d.pieeprom,
                            &board,
                            &d.date,
                        )?;
                        d.clone()
                    }
                }
            }
            (None, None) => eb.release(&eb.default)?.clone(),
        };
        if local.vl805.is_some() && release.vl805.is_none() {
            bail!(usage(format!(
                "--vl805-file: the {board} {} release pins no vl805 file",
                release.date
            )));
        }
        Ok(EepromJob {
            target: TargetSpec::of_card(&a.target)?,
            device: DeviceOpts::from_args(&a.device_opts),
            board,
            soc,
            manifest,
            release,
            local,
            edits,
            node: a.node.clone(),
            size: a.size.map(|s| s.0),
            offline: a.net.offline,
            fetch: a.net.fetch_options(),
        })
    }

    /// The job `images` makes: the cluster's EEPROM card for `board` (its [defaults.eeprom],
    /// or `node`'s), into `image`.
    pub fn for_cluster(
        manifest: &Manifest,
        board: &str,
        edits: Vec<Edit>,
        node: Option<String>,
        image: PathBuf,
        force: bool,
        offline: bool,
    ) -> Result<Self> {
        let soc = Soc::of_board(board).context("the EEPROM boards are rpi4 and rpi5")?;
        let eb = manifest.eeprom_board(board)?;
        Ok(EepromJob {
            target: TargetSpec::Image { path: image, force },
            device: DeviceOpts::default(),
            board: board.to_string(),
            soc,
            manifest: manifest.clone(),
            release: eb.release(&eb.default)?.clone(),
            local: Local::default(),
            edits,
            node,
            size: None,
            offline,
            fetch: crate::cli::NetArgs {
                offline,
                timeout: 30,
                retries: 4,
                max_time: 300,
            }
            .fetch_options(),
        })
    }

    /// One file of the release: the local path, else the cache, else the download; verified.
    fn one(
        &self,
        role: &'static str,
        pin: &PinnedFile,
        local: Option<&Path>,
        cache: &Cache,
        progress: &dyn Progress,
    ) -> Result<Vec<u8>> {
        let (board, date) = (&self.board, &self.release.date);
        if let Some(p) = local {
            let bytes = crate::util::read_limited(p, MAX_FILE, "a bootloader file")?;
            check_local(&self.manifest, p, &bytes, role, pin, board, date)?;
            // Pinned: kept in the cache, for offline runs and inspect's check of the card.
            if let Err(e) = cache.store_file(&pin.digest()?, &bytes) {
                progress.notice(&format!("warning: not cached: {e:#}"));
            }
            return Ok(bytes);
        }
        let sha = pin.digest()?;
        let cached = cache.file_path(&sha);
        if let Ok(bytes) = crate::util::read_limited(&cached, MAX_FILE, "a cached file") {
            if Sha256Digest::of(&bytes) == sha {
                return Ok(bytes);
            }
            progress.notice(&format!(
                "warning: {} in the cache does not match its pin; fetching it again",
                cached.display()
            ));
        }
        if self.offline {
            bail!(
                "{board} {date}'s {} is not in the cache and --offline forbids the download: give it with --{}-file PATH (nixpkgs' raspberrypi-eeprom has it), or run once online",
                pin.base(),
                if role == "pieeprom" { "eeprom" } else { role }
            );
        }
        let url = pin.url(&self.release.commit);
        let _lock = cache.lock()?;
        progress.phase(&format!("downloading {url}"));
        let opts = FetchOptions {
            max_bytes: pin.size,
            ..self.fetch.clone()
        };
        let d = crate::firmware::fetch::download(&url, &cache.partial_path(&url), &opts, progress)
            .map_err(|e| crate::error::Hinted {
                inner: e,
                hint: format!(
                    "without the network, give the release's files: --eeprom-file, --recovery-file{} (nixpkgs' raspberrypi-eeprom has them under lib/firmware/raspberrypi/bootloader-{}/), or run once online to cache them",
                    if self.release.vl805.is_some() { ", --vl805-file" } else { "" },
                    match self.soc { Soc::Bcm2712 => "2712", _ => "2711" }
                ),
            })?;
        if d.sha256 != sha || d.bytes.len() as u64 != pin.size {
            bail!(
                "{url}: sha256 {} ({} bytes), but the manifest pins {} ({} bytes): hash mismatch, nothing was written",
                d.sha256,
                d.bytes.len(),
                pin.sha256,
                pin.size
            );
        }
        cache.store_file(&sha, &d.bytes)?;
        Ok(d.bytes)
    }

    /// The release's files, each verified against its pin.
    pub fn obtain(&self, progress: &dyn Progress) -> Result<ReleaseFiles> {
        let cache = Cache::from_env()?;
        let r = &self.release;
        let pieeprom = self.one(
            "pieeprom",
            &r.pieeprom,
            self.local.pieeprom.as_deref(),
            &cache,
            progress,
        )?;
        let recovery = self.one(
            "recovery",
            &r.recovery,
            self.local.recovery.as_deref(),
            &cache,
            progress,
        )?;
        let vl805 = match &r.vl805 {
            Some(pin) => {
                Some(self.one("vl805", pin, self.local.vl805.as_deref(), &cache, progress)?)
            }
            None => None,
        };
        progress.phase(&format!(
            "{} bootloader {} verified against its pins",
            self.board, r.date
        ));
        Ok(ReleaseFiles {
            board: self.board.clone(),
            date: r.date.clone(),
            pieeprom,
            recovery,
            vl805,
        })
    }

    /// The card's size and sector size on `target`.
    fn geometry(&self, target: &Target) -> (u64, u64) {
        target.device_geometry().unwrap_or((
            self.size.unwrap_or(
                crate::disk::geometry::PARTITION_START + eeprom::PARTITION_SIZE + (1 << 20),
            ),
            512,
        ))
    }

    /// A release older than the board's default (its newest tested one), said with the rule
    /// that makes it risky: a board may need a newer bootloader than the image (MIN_BOOT_VER).
    pub fn older_than_default(&self, mfg_ver: Option<u32>) -> Option<String> {
        let eb = self.manifest.eeprom_board(&self.board).ok()?;
        (self.release.date < eb.default).then(|| {
            format!(
                "warning: the {} bootloader {} is older than {}, the default release: a board made later may need a newer one (its minimum, /proc/device-tree/chosen/rpi-min-boot-ver, above this image's MFG_VER {}: rpi-eeprom-update warns so, rpi-eeprom README \"Minimum bootloader version\"); read it on the board first",
                self.board,
                self.release.date,
                eb.default,
                mfg_ver.map_or("(none)".to_string(), |v| v.to_string())
            )
        })
    }

    /// The card built in memory for `target`.
    pub fn build(&self, files: &ReleaseFiles, target: &Target) -> Result<BuiltEeprom> {
        let ts = crate::util::source_date_epoch()?;
        let edited = eeprom::edit(files, self.soc, &self.edits, ts)?;
        let (size, ss) = self.geometry(target);
        let seed = format!(
            "eeprom/{}/{}/{}",
            self.board,
            self.release.date,
            self.node.as_deref().unwrap_or("")
        );
        let layout = SdLayout {
            sector_size: ss,
            table: TableKind::Mbr,
            mbr_type: eeprom::MBR_TYPE,
            gpt_type: esp_type(),
            partition_size: eeprom::partition_size(ss),
            partition_name: String::new(),
            seed: seed.clone(),
            partition_guid: None,
        };
        let plan = layout
            .plan(size)
            .with_context(|| target.path().display().to_string())?;
        let mut set = eeprom::card_files(files, &edited, self.soc)?;
        let record = EepromRecord {
            record: 1,
            card: crate::eeprom::record::KIND.into(),
            made_by: format!("pi-burn {}", env!("CARGO_PKG_VERSION")),
            node: self.node.clone(),
            board: self.board.clone(),
            release: self.release.date.clone(),
            build_timestamp: edited.image.build_timestamp(),
            mfg_ver: edited.image.mfg_ver(),
            release_pieeprom_sha256: self.release.pieeprom.sha256.clone(),
            bootconf: edited.applied.iter().map(RecProperty::of).collect(),
            bootconf_txt: edited.bootconf.clone(),
            ts: edited.ts,
            table: RecTable::of(&plan, eeprom::LABEL),
            files: RecFile::all(&set),
        };
        record.add_to(&mut set)?;
        let when = crate::firmware::manifest::parse_date(&self.release.date)?;
        let built = crate::disk::card::build_sdcard(
            &plan,
            &set,
            eeprom::LABEL,
            &seed,
            super::timestamp(Some(when))?,
        )?;
        let files_report = RecFile::all(&set)
            .into_iter()
            .map(|f| FileReport {
                path: f.path,
                size: f.bytes,
                sha256: f.sha256,
            })
            .collect();
        Ok(BuiltEeprom {
            plan,
            built,
            record,
            edited,
            files: files_report,
        })
    }
}

/// "BOOT_ORDER=0xf41 (SD card, then USB mass storage, then restart; from --boot-order)".
fn property_lines(b: &BuiltEeprom) -> Vec<String> {
    b.edited
        .applied
        .iter()
        .map(|a| {
            let what = if a.key == "BOOT_ORDER" {
                format!("{}; ", bootconf::describe_boot_order(&a.value))
            } else {
                String::new()
            };
            format!(
                "{}={} ({what}{}, from {})",
                a.key,
                a.value,
                serde_json::to_value(a.change)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                a.from
            )
        })
        .collect()
}

impl EepromJob {
    /// The card as a burn of `target`.
    pub fn burn(&self, target: &Target, b: BuiltEeprom) -> crate::job::Burn {
        use crate::util::units::human;
        let rel = &self.release;
        let mut plan = vec![format!(
            "will write:  {} MBR card, partition 1 at sector {} (0x0c FAT32 '{}', {}): {} bootloader {}: {}{}",
            human(b.plan.size),
            b.plan.partitions[0].first_lba,
            eeprom::LABEL,
            human(b.plan.partitions[0].sectors() * b.plan.sector_size),
            self.board,
            rel.date,
            b.files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            match target {
                Target::Device(_) => format!(
                    "; {} to write, table last",
                    human(crate::write::target::planned_bytes(&b.built.disk))
                ),
                Target::Image(_) => String::new(),
            }
        )];
        plan.extend(
            property_lines(&b)
                .into_iter()
                .map(|l| format!("             bootconf {l}")),
        );
        let mut report =
            crate::report::Report::new(crate::report::Target::of(target, b.plan.size), &b.plan);
        report.filesystem = Some(b.built.fat.clone());
        report.files = b.files.clone();
        report.eeprom = Some(crate::report::EepromReport {
            board: self.board.clone(),
            release: rel.date.clone(),
            build_timestamp: b.record.build_timestamp,
            mfg_ver: b.record.mfg_ver,
            bootconf: b.edited.applied.clone(),
            bootconf_txt: b.edited.bootconf.clone(),
        });
        let headline = format!(
            "{}: EEPROM card for the {} bootloader {}{}",
            target.path().display(),
            self.board,
            rel.date,
            self.node
                .as_deref()
                .map(|n| format!(" ({})", crate::util::text::printable(n)))
                .unwrap_or_default(),
        );
        crate::job::Burn {
            image: b.built.disk,
            plan,
            report,
            options: self.device.write_options(),
            done: Box::new(move |d| {
                vec![format!(
                    "{headline}: {} written{}",
                    human(d.bytes_written),
                    if d.bytes_read_back.is_some() {
                        ", read back and verified"
                    } else {
                        ""
                    }
                )]
            }),
            next: vec![format!(
                "next: power the {} off, insert this card, power it on; after about 10 s the green LED blinks fast and a screen shows green (red, or another pattern: the update failed). Power off and take the card out. pi-burn cannot undo an update: keep a card of the release before.",
                if self.board == "rpi5" { "Pi 5" } else { "Pi 4" }
            )],
        }
    }
}

/// An EEPROM card built in memory.
pub struct BuiltEeprom {
    pub plan: DiskPlan,
    pub built: crate::disk::card::BuiltCard,
    pub record: EepromRecord,
    pub edited: Edited,
    pub files: Vec<FileReport>,
}

/// An EEPROM card's release claims: its files against the manifest's pins and, when the
/// release's pieeprom is in the cache, pieeprom.bin against it with the recorded bootconf.txt.
pub fn check_release(c: &mut crate::eeprom::check::EepromCheck, manifest: &Manifest) {
    use crate::util::text::printable;
    let r = c.record.clone();
    let (board, date) = (printable(&r.board), printable(&r.release));
    let Some(rel) = manifest
        .eeprom_board(&r.board)
        .ok()
        .and_then(|b| b.release(&r.release).ok())
    else {
        c.unchecked.push(format!(
            "that the files are {board} {date}'s (this pi-burn's manifest pins no such bootloader release)"
        ));
        return;
    };
    if r.release_pieeprom_sha256 != rel.pieeprom.sha256 {
        c.problems.push(format!(
            "the record says {board} {date}'s pieeprom is sha256 {}, the manifest pins {}",
            printable(&r.release_pieeprom_sha256),
            rel.pieeprom.sha256
        ));
    }
    for (name, pin) in [
        ("recovery.bin", Some(&rel.recovery)),
        ("vl805.bin", rel.vl805.as_ref()),
    ] {
        match (c.sha_of(name), pin) {
            (Some(sha), Some(p)) if sha.hex() != p.sha256 => c.problems.push(format!(
                "/{name}: sha256 {sha}, not {board} {date}'s {}",
                p.sha256
            )),
            (Some(_), None) => c
                .problems
                .push(format!("/{name}: {board} {date} pins none")),
            (None, Some(_)) => c
                .problems
                .push(format!("/{name}: missing ({board} {date} has one)")),
            _ => {}
        }
    }
    let original = rel.pieeprom.digest().ok().and_then(|sha| {
        let cache = Cache::from_env().ok()?;
        let bytes =
            crate::util::read_limited(&cache.file_path(&sha), MAX_FILE, "a cached file").ok()?;
        (Sha256Digest::of(&bytes) == sha).then_some(bytes)
    });
    let Some(original) = original else {
        c.unchecked.push(format!(
            "that /pieeprom.bin is {board} {date}'s apart from its bootconf.txt (the release's pieeprom is not in the cache; `pi-burn eeprom` fetches it)"
        ));
        return;
    };
    let rebuilt =
        crate::eeprom::EepromImage::parse(original, "the cached pieeprom").and_then(|mut i| {
            i.replace_file("bootconf.txt", r.bootconf_txt.as_bytes())?;
            Ok(i.into_bytes())
        });
    match (rebuilt, c.card.kept.get("pieeprom.bin")) {
        (Ok(want), Some(got)) if &want == got => c.checked.push(format!(
            "/pieeprom.bin is {board} {date}'s (from the cache) with the recorded bootconf.txt"
        )),
        (Ok(_), Some(_)) => c.problems.push(format!(
            "/pieeprom.bin is not {board} {date}'s with the recorded bootconf.txt"
        )),
        (Err(e), _) => c.problems.push(format!(
            "the recorded bootconf.txt does not fit {board} {date}'s pieeprom: {e:#}"
        )),
        (Ok(_), None) => {}
    }
}
