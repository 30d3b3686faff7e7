//! pi-burn's integration tests: one binary, a module per area, run by libtest-mimic so that a
//! test that cannot run here (a missing tool, not root) is reported as *ignored*, with its
//! reason, instead of passing. With PI_BURN_REQUIRE_ALL_TESTS=1 such a test fails instead.
//!
//! `cargo test` prints `test MODULE::NAME ... ignored, REASON` for each; the summary line counts
//! them.

mod card_life;
mod cluster;
mod counterfeit;
mod device;
mod disko;
mod download;
mod eeprom;
mod flash;
mod harness;
mod hostile;
mod json;
mod keys;
mod library;
mod nar;
mod newcomer;
mod readme;
mod sdcard;
mod server;
mod ssd;
mod uefi;

/// A module's name and its tests (name, function).
type Module = (&'static str, &'static [(&'static str, fn())]);

/// A module's list of tests: each function named once, its name taken from it.
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        pub const TESTS: &[(&str, fn())] = &[$((stringify!($name), $name)),*];
    };
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let modules: &[Module] = &[
        ("card_life", card_life::TESTS),
        ("cluster", cluster::TESTS),
        ("counterfeit", counterfeit::TESTS),
        ("device", device::TESTS),
        ("disko", disko::TESTS),
        ("download", download::TESTS),
        ("eeprom", eeprom::TESTS),
        ("flash", flash::TESTS),
        ("hostile", hostile::TESTS),
        ("json", json::TESTS),
        ("keys", keys::TESTS),
        ("library", library::TESTS),
        ("nar", nar::TESTS),
        ("newcomer", newcomer::TESTS),
        ("readme", readme::TESTS),
        ("sdcard", sdcard::TESTS),
        ("ssd", ssd::TESTS),
        ("uefi", uefi::TESTS),
    ];
    let trials = modules
        .iter()
        .flat_map(|(module, tests)| {
            tests.iter().map(move |(name, f)| {
                let f = *f;
                libtest_mimic::Trial::ignorable_test(format!("{module}::{name}"), move || {
                    Ok(harness::run_trial(f))
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
