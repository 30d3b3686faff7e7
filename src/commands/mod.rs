//! One module per subcommand, the only code that prints: its flags become a job
//! ([`crate::job`]), the job runs, the outcome is printed. Commands never call each other.

pub mod devices;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
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
        Command::Probe(a) => probe::run(a, g),
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
    mut report: crate::report::Report,
    e: anyhow::Error,
    g: &Global,
) -> Result<()> {
    if let Some(m) = e.downcast_ref::<crate::error::Mismatch>() {
        if g.json {
            report.mismatches = Some(m.0.clone());
            println!("{}", report.to_json()?);
        } else {
            for line in &m.0 {
                println!("{line}");
            }
        }
    }
    Err(e)
}
