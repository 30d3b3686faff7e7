//! The target of a command as the flags name it (an image path, or a device), checked into a
//! [`Target`] before anything is built: the image path must be replaceable, the device must
//! pass every safety rule.

use crate::blockdev::{Allow, Claimed, Disk};
use crate::cli::DeviceArgs;
use crate::write::image::check_replaceable;
use crate::write::Target;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The safety options for devices.
#[derive(Debug, Clone, Default)]
pub struct DeviceOpts {
    pub yes: bool,
    pub dry_run: bool,
    pub allow_fixed_disk: bool,
    pub verify: bool,
    /// Test the device's real capacity before writing its data.
    pub probe: bool,
}

impl DeviceOpts {
    pub fn from_args(a: &DeviceArgs) -> Self {
        DeviceOpts {
            yes: a.yes,
            dry_run: a.dry_run,
            allow_fixed_disk: a.allow_fixed_disk,
            verify: !a.no_verify,
            probe: !a.no_probe,
        }
    }

    pub fn allow(&self) -> Allow {
        Allow {
            fixed_disk: self.allow_fixed_disk,
        }
    }

    pub fn write_options(&self) -> crate::write::Options {
        crate::write::Options {
            verify: self.verify,
            bmap_disk: None,
            probe: self.probe,
        }
    }
}

/// What the flags name as the target.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    Image { path: PathBuf, force: bool },
    Device(PathBuf),
}

/// What follows the error when a positional DEVICE is no block device.
const DEVICE_HINT: Option<&str> = Some("an image file goes with --image PATH");

impl TargetSpec {
    /// The positional DEVICE or `--image PATH` (clap requires exactly one where both exist).
    pub fn from_args(device: Option<&Path>, image: Option<&Path>, force: bool) -> Result<Self> {
        match (device, image) {
            (Some(d), _) => Ok(TargetSpec::Device(d.to_path_buf())),
            (None, Some(p)) => Ok(TargetSpec::Image {
                path: p.to_path_buf(),
                force,
            }),
            (None, None) => Err(crate::error::usage("give a DEVICE or --image PATH")),
        }
    }

    /// A card's target as the flags name it.
    pub fn of_card(t: &crate::cli::CardTarget) -> Result<Self> {
        Self::from_args(t.device.as_deref(), t.image.as_deref(), t.force)
    }

    pub fn is_device(&self) -> bool {
        matches!(self, TargetSpec::Device(_))
    }

    /// Every check on the target: an image path that may be replaced; a device that is a
    /// whole disk nothing uses, which this user may write (exit 4 otherwise).
    pub fn claim(&self, allow: Allow) -> Result<Target> {
        match self {
            TargetSpec::Image { path, force } => {
                check_replaceable(path, *force)?;
                Ok(Target::Image(path.clone()))
            }
            TargetSpec::Device(p) => {
                let disk = Disk::open(p, DEVICE_HINT)?;
                Ok(Target::Device(Box::new(Claimed::claim(
                    disk,
                    allow,
                    crate::media::describe_path,
                )?)))
            }
        }
    }
}

/// A card or disk to read (verify, inspect, firmware settings): a whole-disk device, its page
/// cache dropped, or an image file.
pub struct ReadTarget {
    pub report: crate::report::Target,
    pub file: std::fs::File,
    /// The device, when it is one.
    pub disk: Option<Disk>,
}

impl ReadTarget {
    pub fn open(device: Option<&Path>, image: Option<&Path>) -> Result<Self> {
        use crate::blockdev::sys;
        if let Some(dev) = device {
            let disk = Disk::open(dev, DEVICE_HINT)?;
            let path = disk.path().to_path_buf();
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let size = sys::size_bytes(&file)
                .with_context(|| format!("reading the size of {}", path.display()))?;
            // Read what is on the card, not what the page cache remembers.
            sys::drop_cache(&file);
            return Ok(ReadTarget {
                report: crate::report::Target {
                    kind: "device",
                    path: path.display().to_string(),
                    size,
                },
                file,
                disk: Some(disk),
            });
        }
        let Some(path) = image else {
            return Err(crate::error::usage("give a DEVICE or --image PATH"));
        };
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "opening {} (a card goes as the positional DEVICE)",
                path.display()
            )
        })?;
        if !meta.is_file() {
            anyhow::bail!(
                "{} is not an image file (give a card as the positional DEVICE)",
                path.display()
            );
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(ReadTarget {
            report: crate::report::Target {
                kind: "image",
                path: path.display().to_string(),
                size: meta.len(),
            },
            file,
            disk: None,
        })
    }

    pub fn path(&self) -> &str {
        &self.report.path
    }

    pub fn size(&self) -> u64 {
        self.report.size
    }
}
