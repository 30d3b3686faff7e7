//! Which firmware, and where it comes from: the firmware flags as one value. The manifest is
//! read and the board and release checked here, so a misspelt version is a usage error before
//! any download.

use crate::cli::{FirmwareArgs, PinArgs};
use crate::firmware::cache::Cache;
use crate::firmware::fetch::FetchOptions;
use crate::firmware::manifest::Manifest;
use crate::firmware::{obtain, Firmware, Online, Origin, Request};
use crate::progress::Progress;
use anyhow::Result;

#[derive(Debug, Clone)]
pub struct FirmwareJob {
    pub manifest: Manifest,
    pub request: Request,
    pub origin: Origin,
    pub offline: bool,
    pub fetch: FetchOptions,
}

/// The request the pin flags make, checked against the manifest.
pub fn request(a: &PinArgs) -> Result<(Manifest, Request)> {
    let manifest = Manifest::load(a.manifest.as_deref())?;
    // Before any download: a board or release the manifest does not know is refused (as a
    // refused firmware, exit 1) naming the ones it knows.
    let name = a.board.clone().unwrap_or_else(|| "rpi4".into());
    let board = manifest.board(&name)?;
    if let Some(v) = &a.firmware {
        board.release(v)?;
    }
    let req = Request {
        board: name,
        version: a.firmware.clone(),
        sha256: a.sha256.map(|s| s.0),
        max_unpacked: a.max_unpacked.0,
    };
    Ok((manifest, req))
}

impl FirmwareJob {
    pub fn from_args(a: &FirmwareArgs) -> Result<Self> {
        let (manifest, request) = request(&a.pin)?;
        let origin = match (&a.firmware_zip, &a.firmware_url) {
            (Some(p), _) => Origin::Zip(p.clone()),
            (None, Some(u)) => Origin::Url(u.clone()),
            (None, None) => Origin::Release,
        };
        Ok(FirmwareJob {
            manifest,
            request,
            origin,
            offline: a.net.offline,
            fetch: a.net.fetch_options(),
        })
    }

    pub fn board(&self) -> &str {
        &self.request.board
    }

    /// Whether the flags name a firmware at all (verify checks a card against its own record
    /// when they do not).
    pub fn names_one(&self) -> bool {
        self.request.version.is_some()
            || self.request.sha256.is_some()
            || !matches!(self.origin, Origin::Release)
    }

    /// Gets (local zip, cache or network) and verifies the firmware.
    pub fn obtain(&self, progress: &dyn Progress) -> Result<Firmware> {
        let cache = Cache::from_env()?;
        let net = Online {
            offline: self.offline,
            fetch: &self.fetch,
            cache: &cache,
        };
        progress.phase("verifying firmware");
        let fw = obtain(&self.manifest, &self.request, &self.origin, &net, progress)?;
        let (kind, hash) = fw.hash();
        progress.phase(&format!(
            "firmware {} {} verified by {kind} ({hash}), from {}",
            fw.board, fw.version, fw.source
        ));
        Ok(fw)
    }
}
