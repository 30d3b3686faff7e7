//! `flash` as a job: the image and its block map, the devices, the options; the devices
//! claimed and the source opened before anything is written.

use super::target::DeviceOpts;
use crate::blockdev::{Claimed, Disk};
use crate::cli::FlashArgs;
use crate::disk::bmap::{self, Bmap};
use crate::error::{usage, Refused};
use crate::util::units::human;
use crate::write::source::{self, Kind};
use crate::write::{Input, Plan};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Which block map to use.
#[derive(Debug, Clone)]
pub enum BmapChoice {
    /// `IMAGE.bmap` (or the name without .gz/.xz/.zst plus .bmap) when it is there.
    Sidecar,
    Given(PathBuf),
    None,
}

#[derive(Debug, Clone)]
pub struct FlashJob {
    pub image: PathBuf,
    pub bmap: BmapChoice,
    pub require_table: bool,
    pub devices: Vec<PathBuf>,
    pub device: DeviceOpts,
}

/// The source as the engine reads it, and how it is written ("block map x.bmap (7 MiB
/// mapped)").
pub struct Opened {
    pub name: String,
    pub kind: Kind,
    pub input: Input<'static>,
    pub plan: Plan,
    pub how: String,
}

/// The disk an SSD image's block map describes (see `SsdJob::described`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    node: String,
    seed: String,
    sector_size: u64,
    attr: String,
    disk: serde_json::Value,
}

/// An SSD image's disk laid out anew on a larger device, as disko's sgdisk would lay it out
/// there: the partitions sized "100%" take the rest of the device, every other one stays.
struct DiskoRelayout {
    node: String,
    seed: String,
    disk: crate::ssd::DiskoDisk,
    /// The image's own table.
    image: crate::disk::geometry::DiskPlan,
}

impl DiskoRelayout {
    fn parse(text: &str, image_size: u64, origin: &str) -> Result<Self> {
        let d: Described = serde_json::from_str(text)
            .with_context(|| format!("{origin}: its disk description is not pi-burn's"))?;
        if d.node.len() > 255 || d.seed.len() > 4096 || d.node.chars().any(char::is_control) {
            bail!("{origin}: its disk description names no plausible node");
        }
        let devices = serde_json::json!({ "disk": { d.attr.clone(): d.disk } });
        let what = format!("{origin} (the disk it describes)");
        let disk = crate::ssd::DiskoDisk::from_devices(&devices, &d.attr, &what)?;
        let image = crate::ssd::plan(&disk, image_size, d.sector_size, &d.seed)
            .with_context(|| what.clone())?;
        Ok(DiskoRelayout {
            node: d.node,
            seed: d.seed,
            disk,
            image,
        })
    }
}

impl crate::write::plan::Relayout for DiskoRelayout {
    fn relayout(
        &self,
        size: u64,
        ss: u64,
    ) -> std::result::Result<crate::write::plan::Relaid, String> {
        let instead = format!(
            "make the SSD on this device with `pi-burn ssd --node {} DEVICE`",
            self.node
        );
        let plan = crate::ssd::plan(&self.disk, size, ss, &self.seed)
            .map_err(|e| format!("{e:#}; {instead}"))?;
        let mut zero = vec![];
        let mut grew = vec![];
        for (new, old) in plan.partitions.iter().zip(&self.image.partitions) {
            if new.first_lba != old.first_lba || new.last_lba < old.last_lba {
                return Err(format!(
                    "on this device disko would place partition {} ({}) at sectors {}-{}, not where the image has it ({}-{}); {instead}",
                    new.number, new.name, new.first_lba, new.last_lba, old.first_lba, old.last_lba
                ));
            }
            if new.last_lba > old.last_lba {
                let end = (new.last_lba + 1) * ss;
                let w = crate::disk::card::PARTITION_WIPE.min(new.sectors() * ss);
                zero.push((end - w, w));
                grew.push(format!(
                    "partition {} {}: {} -> {}",
                    new.number,
                    new.name,
                    human(old.sectors() * ss),
                    human(new.sectors() * ss)
                ));
            }
        }
        let mut table = crate::disk::sparse::SparseImage::new(size);
        crate::disk::table::write_table(&plan, &mut table).map_err(|e| format!("{e:#}"))?;
        Ok(crate::write::plan::Relaid {
            blocks: table.blocks().map(|(o, d)| (o, d.to_vec())).collect(),
            zero,
            note: if grew.is_empty() {
                "the table moved to the device's end".into()
            } else {
                grew.join(", ")
            },
        })
    }
}

/// The largest block map pi-burn reads (a bmap of a 2 TiB image at 4 KiB blocks, every other
/// block mapped, is about 40 MiB).
const MAX_BMAP: u64 = 64 << 20;

/// The plan of a block map: its ranges, and the disk laid out anew on a larger device when the
/// map describes an SSD image's disk.
fn plan_of(b: &Bmap, path: &Path) -> Result<Plan> {
    let mut plan = Plan::from_bmap(b);
    if let Some(text) = &b.disk {
        let r = DiskoRelayout::parse(text, b.image_size, &path.display().to_string())?;
        plan.relayout = Some(crate::write::plan::RelayoutRef(std::sync::Arc::new(r)));
    }
    Ok(plan)
}

impl FlashJob {
    pub fn from_args(a: &FlashArgs) -> Result<Self> {
        Ok(FlashJob {
            image: a.image.clone(),
            bmap: match (&a.bmap, a.no_bmap) {
                (Some(p), _) => BmapChoice::Given(p.clone()),
                (None, true) => BmapChoice::None,
                (None, false) => BmapChoice::Sidecar,
            },
            require_table: !a.no_table,
            devices: a.devices.clone(),
            device: DeviceOpts::from_args(&a.device_opts),
        })
    }

    /// Every device: a whole disk, free, writable, not named twice (exit 4 naming each
    /// refusal).
    pub fn claim(&self) -> Result<Vec<Claimed>> {
        let hint = Some("flash writes block devices only; `pi-burn devices` lists them");
        let mut disks: Vec<Disk> = vec![];
        for p in &self.devices {
            let d = Disk::open(p, hint)?;
            if disks.iter().any(|o| o.resolved.dev == d.resolved.dev) {
                bail!(usage(format!("{} is named twice", d.path().display())));
            }
            disks.push(d);
        }
        let mut refusals = vec![];
        for d in &disks {
            let b = d.blockers(self.device.allow())?;
            if !b.is_empty() {
                refusals.push(format!("{}: {}", d.path().display(), b.join("; ")));
            }
        }
        if !refusals.is_empty() {
            bail!(Refused(format!("refusing: {}", refusals.join("; "))));
        }
        disks
            .into_iter()
            .map(|d| Claimed::claim(d, self.device.allow(), crate::media::describe_path))
            .collect()
    }

    /// The block map to use: the one given, else a sidecar next to the image.
    fn find_bmap(&self) -> Result<Option<(PathBuf, Bmap)>> {
        let candidates: Vec<PathBuf> = match &self.bmap {
            BmapChoice::None => return Ok(None),
            BmapChoice::Given(p) => vec![p.clone()],
            BmapChoice::Sidecar if self.image.as_os_str() == "-" => vec![],
            BmapChoice::Sidecar => {
                let mut c = vec![bmap::sidecar(&self.image)];
                let s = self.image.to_string_lossy();
                for ext in [".gz", ".xz", ".zst"] {
                    if let Some(stem) = s.strip_suffix(ext) {
                        c.push(bmap::sidecar(Path::new(stem)));
                    }
                }
                c
            }
        };
        let given = matches!(self.bmap, BmapChoice::Given(_));
        for p in candidates {
            if !given && !p.is_file() {
                continue;
            }
            let text = crate::util::read_limited(&p, MAX_BMAP, "a block map")?;
            let text = String::from_utf8(text)
                .with_context(|| format!("{} is not a bmap file (not text)", p.display()))?;
            return Ok(Some((
                p.clone(),
                bmap::parse(&text, &p.display().to_string())?,
            )));
        }
        Ok(None)
    }

    /// Opens the image and its map: what is not a disk image is refused here, before any
    /// device is touched.
    pub fn open(&self) -> Result<Opened> {
        let src = source::open(&self.image)?;
        let map = self.find_bmap()?;
        let kind = src.kind;
        let name = src.name.clone();
        let (input, plan, how) = match (map, src.file) {
            (Some((p, b)), Some(f)) if kind == Kind::Raw => {
                if src.size != Some(b.image_size) {
                    bail!(
                        "{} is {} bytes but its block map {} describes {} bytes",
                        src.name,
                        src.size.unwrap_or(0),
                        p.display(),
                        b.image_size
                    );
                }
                let how = format!(
                    "block map {} ({} mapped{})",
                    p.display(),
                    human(b.mapped_bytes()),
                    if b.disk.is_some() {
                        "; the disk laid out anew on a larger device, as disko would"
                    } else {
                        ""
                    }
                );
                (Input::File(f), plan_of(&b, &p)?, how)
            }
            (Some((p, b)), _) => {
                let how = format!(
                    "block map {} ({} mapped, {} stream)",
                    p.display(),
                    human(b.mapped_bytes()),
                    kind.name()
                );
                let stream = src
                    .stream
                    .context("a compressed image is read as a stream")?;
                (Input::Stream(stream), plan_of(&b, &p)?, how)
            }
            (None, Some(f)) if kind == Kind::Raw => {
                // Without a block map nothing says a hole does not matter: holes are written as
                // zeros, so no byte of what the card held before survives inside the image.
                let size = src.size.unwrap_or(0);
                let how = format!(
                    "no block map: the whole file ({}), holes written as zeros",
                    human(size)
                );
                (Input::File(f), Plan::whole_file(size), how)
            }
            (None, _) => {
                let how = format!("no block map: the whole {} stream", kind.name());
                let stream = src
                    .stream
                    .context("a compressed image is read as a stream")?;
                (Input::Stream(stream), Plan::whole_stream(), how)
            }
        };
        Ok(Opened {
            name,
            kind,
            input,
            plan: Plan {
                require_table: self.require_table,
                ..plan
            },
            how,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_disk_description_is_an_error() {
        for (text, want) in [
            ("not json", "not pi-burn's"),
            ("{}", "not pi-burn's"),
            (
                r#"{"node":"n","seed":"s","sector_size":512,"attr":"d","disk":{},"extra":1}"#,
                "not pi-burn's",
            ),
            (
                r#"{"node":"n\u001b","seed":"s","sector_size":512,"attr":"d","disk":{}}"#,
                "no plausible node",
            ),
            (
                r#"{"node":"n","seed":"s","sector_size":512,"attr":"d","disk":{"type":"disk"}}"#,
                "content",
            ),
            (
                r#"{"node":"n","seed":"s","sector_size":1000,"attr":"d","disk":{"type":"disk","content":{"type":"gpt","partitions":{}}}}"#,
                "sector size",
            ),
        ] {
            let e = format!(
                "{:#}",
                DiskoRelayout::parse(text, 1 << 30, "m.bmap").err().unwrap()
            );
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
