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
mod golden;
mod harness;
mod hostile;
mod json;
mod keys;
mod layers;
mod library;
mod nar;
mod newcomer;
mod node;
mod onedisk;
mod readme;
mod sdcard;
mod server;
mod ssd;
mod sweep;
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
        ("golden", golden::TESTS),
        ("hostile", hostile::TESTS),
        ("json", json::TESTS),
        ("keys", keys::TESTS),
        ("layers", layers::TESTS),
        ("library", library::TESTS),
        ("nar", nar::TESTS),
        ("newcomer", newcomer::TESTS),
        ("node", node::TESTS),
        ("onedisk", onedisk::TESTS),
        ("readme", readme::TESTS),
        ("sdcard", sdcard::TESTS),
        ("ssd", ssd::TESTS),
        ("sweep", sweep::TESTS),
        ("uefi", uefi::TESTS),
    ];
    let trials = modules
        .iter()
        .flat_map(|(module, tests)| {
            tests.iter().map(move |(name, f)| {
                let f = *f;
                let full = format!("{module}::{name}");
                libtest_mimic::Trial::ignorable_test(full.clone(), move || {
                    let start = std::time::Instant::now();
                    let done = harness::run_trial(f);
                    took(full, start.elapsed());
                    Ok(done)
                })
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    print_durations();
    conclusion.exit();
}

/// Each test's wall time, kept for the table printed at the end.
static DURATIONS: std::sync::Mutex<Vec<(String, std::time::Duration)>> =
    std::sync::Mutex::new(Vec::new());

fn took(name: String, d: std::time::Duration) {
    if let Ok(mut v) = DURATIONS.lock() {
        v.push((name, d));
    }
}

/// Every test's duration, slowest first (on stderr): where CI's time goes.
fn print_durations() {
    let Ok(mut v) = DURATIONS.lock() else { return };
    if v.is_empty() {
        return;
    }
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    let total: std::time::Duration = v.iter().map(|x| x.1).sum();
    eprintln!(
        "\ntest durations, slowest first ({} tests, {:.1} s in all):",
        v.len(),
        total.as_secs_f64()
    );
    for (name, d) in v.iter() {
        eprintln!("{:>8.2} s  {name}", d.as_secs_f64());
    }
}
