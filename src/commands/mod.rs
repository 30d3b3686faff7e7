//! One module per subcommand, the only code that prints: its flags become a job
//! ([`crate::job`]), the job runs, the outcome is printed. Commands never call each other.

pub mod devices;
pub mod eeprom;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
pub mod keys;
pub mod meta;
pub mod probe;
pub mod prompt;
pub mod record;
pub mod sdcard;
pub mod ssd;
pub mod verify;

use crate::cli::Command;
use crate::progress::Progress;
use anyhow::Result;

/// Options shared by every command.
pub struct Global {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: Box<dyn Progress>,
}

impl Global {
    pub fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }
}

/// Runs `command`.
pub fn run(command: &Command, g: &Global) -> Result<()> {
    match command {
        Command::Sdcard(a) => sdcard::run(a, g),
        Command::Ssd(a) => ssd::run(a, g),
        Command::Verify(a) => verify::run(a, g),
        Command::Flash(a) => flash::run(a, g),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Images(a) => images::run(a, g),
        Command::Devices => devices::run(g),
        Command::Eeprom(a) => eeprom::run(a, g),
        Command::Probe(a) => probe::run(a, g),
        Command::Keys(a) => keys::run(a, g),
        Command::Firmware(c) => firmware::run(c, g),
        Command::Completions { shell } => meta::completions(*shell),
        Command::Man(a) => meta::man(a),
    }
}

/// Prints `report` as the run's JSON object with the outcome's `error` and `exit_code`
/// (failures too: one object per run); a failure is then marked as reported.
pub fn finish_json(mut j: serde_json::Value, result: Result<()>) -> Result<()> {
    let (error, code) = match &result {
        Ok(()) => (None, 0),
        Err(e) => {
            let (m, c) = crate::error::Reported::fields(e);
            (Some(m), c)
        }
    };
    j["error"] = serde_json::json!(error);
    j["exit_code"] = serde_json::json!(code);
    println!("{}", serde_json::to_string_pretty(&j)?);
    result.map_err(|e| crate::error::Reported(e).into())
}

/// A write failed after its report was made: a read-back difference prints its lines (or
/// the report with them, with `--json`) and stays a verification failure; any other error
/// goes up as it is.
pub fn fail_with_report(
    report: &mut crate::report::Report,
    e: anyhow::Error,
    g: &Global,
) -> anyhow::Error {
    if let Some(m) = e.downcast_ref::<crate::error::Mismatch>() {
        if g.json {
            report.mismatches = Some(m.0.clone());
            if let Ok(j) = report.to_json() {
                println!("{j}");
            }
        } else {
            for line in &m.0 {
                println!("{line}");
            }
        }
    }
    e
}

/// Delivers `img` to `target` (an image with its block map, or a device through the engine)
/// and fills `report` with what the write did; a failure is reported as
/// [`fail_with_report`] does.
pub fn deliver_reported(
    img: &crate::disk::sparse::SparseImage,
    target: &crate::write::Target,
    options: &crate::write::Options,
    report: &mut crate::report::Report,
    g: &Global,
) -> Result<crate::write::Delivered> {
    let done = crate::write::deliver(img, target, options, g.progress())
        .map_err(|e| fail_with_report(report, e, g))?;
    if let Some(b) = &done.bmap {
        g.progress()
            .phase(&format!("image written, block map in {}", b.display()));
    }
    report.bytes_written = Some(done.bytes_written);
    report.bytes_read_back = done.bytes_read_back;
    report.probe = done.probe.clone();
    Ok(done)
}
