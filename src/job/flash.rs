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

/// The largest block map pi-burn reads (a bmap of a 2 TiB image at 4 KiB blocks, every other
/// block mapped, is about 40 MiB).
const MAX_BMAP: u64 = 64 << 20;

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
            .map(|d| Claimed::claim(d, self.device.allow()))
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
                    "block map {} ({} mapped)",
                    p.display(),
                    human(b.mapped_bytes())
                );
                (Input::File(f), Plan::from_bmap(&b), how)
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
                (Input::Stream(stream), Plan::from_bmap(&b), how)
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
