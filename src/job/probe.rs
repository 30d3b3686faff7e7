//! `probe`: a device's real capacity, tested without changing its content.

use crate::blockdev::{Allow, Claimed, Disk};
use crate::cli::ProbeArgs;
use crate::progress::{Progress, TargetPhase, TargetStep};
use crate::write::probe::{self, Probed};
use anyhow::Result;
use std::path::PathBuf;

pub struct ProbeJob {
    pub device: PathBuf,
    pub yes: bool,
    pub allow: Allow,
}

impl ProbeJob {
    pub fn from_args(a: &ProbeArgs) -> Self {
        ProbeJob {
            device: a.device.clone(),
            yes: a.yes,
            allow: Allow {
                fixed_disk: a.allow_fixed_disk,
            },
        }
    }

    /// The device, through every safety rule a burn has (it is written, then put back).
    pub fn claim(&self) -> Result<Claimed> {
        let disk = Disk::open(
            &self.device,
            Some("probe tests block devices only; `pi-burn devices` lists them"),
        )?;
        Claimed::claim(disk, self.allow, crate::media::describe_path)
    }

    /// Probes the claimed device, putting back every block it overwrites (also when
    /// interrupted: Ctrl-C stops the probe, not the restore).
    pub fn run(&self, claimed: &Claimed, progress: &dyn Progress) -> Result<Probed> {
        let dev = claimed.open_for_writing()?;
        let name = dev.path.display().to_string();
        let mut sink = crate::write::device::DeviceSink::new(dev)?;
        let (size, ss) = (
            claimed.disk().info.size,
            claimed.disk().info.logical_sector_size,
        );
        let (w, r) = probe::honest_cost(size, ss);
        let _writing = crate::blockdev::sys::Writing::start();
        crate::blockdev::sys::tell(&format!("state\t{name}\tprobing"));
        progress.target(
            0,
            TargetStep::Begin {
                name: name.clone(),
                phase: TargetPhase::Probe,
                total: w + r,
            },
        );
        let found = probe::run(&mut sink, probe::fresh_seed(), &mut |n| {
            progress.target(0, TargetStep::Advance(n))
        });
        progress.target(0, TargetStep::End);
        found.map_err(|e| anyhow::Error::new(e).context(name))
    }
}
