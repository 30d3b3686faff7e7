//! `pi-burn ssd --node NAME`: the node's USB SSD gets the GPT its disko config describes.

use super::{Global, Outcome};
use crate::cli::SsdArgs;
use crate::job::ssd::SsdJob;
use crate::ssd::ConfigSource;
use crate::write::Target;
use anyhow::Result;

/// An explicit device that is not the config's: NixOS finds partitions by label, but the
/// config should name this disk.
fn warn_other_device(job: &SsdJob, target: &Target, g: &Global) {
    let (Target::Device(c), Some(cfg_dev), crate::job::TargetSpec::Device(_)) =
        (target, &job.disk.device, &job.target)
    else {
        return;
    };
    let d = c.disk();
    let cfg_canon = std::fs::canonicalize(cfg_dev).ok();
    if !d.info.by_id.iter().any(|i| i == cfg_dev) && cfg_canon.as_deref() != Some(d.path()) {
        g.progress().notice(&format!(
            "warning: {} is not the configured {cfg_dev}: NixOS will look for its partitions by label, but update the config's device to one of: {}",
            d.path().display(),
            if d.info.by_id.is_empty() { "(no by-id names)".to_string() } else { d.info.by_id.join(", ") }
        ));
    }
}

pub fn run(a: &SsdArgs, g: &Global) -> Result<Outcome> {
    let job = SsdJob::from_args(a)?;
    for n in &job.notices {
        g.progress().notice(n);
    }
    match &job.source {
        ConfigSource::BuiltinDefault => g.progress().notice(&format!(
            "notice: --layout default: {} gets the cluster's documented layout (BOOT 1G EF00 vfat /boot; zfs 100% for pool rpool), not a config file",
            job.node,
        )),
        s => g.progress().phase(&format!("read {}", s.describe())),
    }
    let target = job.target.claim(job.device.allow())?;
    warn_other_device(&job, &target, g);
    let mut fw = match &job.firmware {
        Some(f) => Some(f.job.obtain(g.progress())?),
        None => None,
    };
    let built = job.build(&target, fw.as_mut(), g.progress())?;
    for l in &built.left {
        g.progress().notice(&format!("notice: {l}"));
    }
    let burn = job.burn(&target, built, fw.as_ref());
    super::burn::burn(&target, &job.device, burn, g)
}
