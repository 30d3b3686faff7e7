//! One module per subcommand: its flags become a job ([`crate::job`]), the job runs, and the
//! command returns its [`Outcome`] (body, text, how it ended), which `main` renders once.
//! Commands never call each other; the three that burn a disk they built share one driver
//! ([`burn`]). Progress and the plan go to stderr as they happen; nothing else prints.

pub mod burn;
pub mod devices;
pub mod doctor;
pub mod eeprom;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
pub mod keys;
pub mod meta;
pub mod outcome;
pub mod probe;
pub mod prompt;
pub mod record;
pub mod sdcard;
pub mod ssd;
pub mod verify;

pub use outcome::{Line, Outcome};

use crate::cli::Command;
use crate::progress::Progress;

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

/// Runs `command`: its outcome, a failure with nothing more to say included.
pub fn run(command: &Command, g: &Global) -> Outcome {
    let result = match command {
        Command::Sdcard(a) => sdcard::run(a, g),
        Command::Ssd(a) => ssd::run(a, g),
        Command::Verify(a) => verify::run(a, g),
        Command::Flash(a) => flash::run(a, g),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Images(a) => images::run(a, g),
        Command::Devices => devices::run(),
        Command::Eeprom(a) => eeprom::run(a, g),
        Command::Probe(a) => probe::run(a, g),
        Command::Doctor(a) => doctor::run(a, g),
        Command::Keys(a) => keys::run(a, g),
        Command::Firmware(c) => firmware::run(c, g),
        Command::Completions { shell } => meta::completions(*shell),
        Command::Man(a) => meta::man(a),
    };
    result.unwrap_or_else(Outcome::failed)
}
