//! A small harness: temp dirs, the fixture zips, running pi-burn, and the skip rule for tests
//! that need a tool or root (reported as ignored with the reason; a failure under
//! PI_BURN_REQUIRE_ALL_TESTS=1).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/test-manifest.toml");
pub const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/make-firmware-zip.py");

pub fn require_all() -> bool {
    std::env::var("PI_BURN_REQUIRE_ALL_TESTS").is_ok_and(|v| v == "1")
}

thread_local! {
    /// Why the test running on this thread could not run (all of it), if it could not.
    static SKIPPED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Returns false (the caller returns or leaves a part out) and marks the running test ignored
/// with `reason`; panics when every test must run.
pub fn skip(reason: &str) -> bool {
    if require_all() {
        panic!("PI_BURN_REQUIRE_ALL_TESTS=1 but this test cannot run: {reason}");
    }
    SKIPPED.with(|s| {
        s.borrow_mut().get_or_insert_with(|| reason.to_string());
    });
    false
}

/// Runs one test: ignored (with the first reason) when it skipped anything, else completed.
/// A panic is a failure (libtest-mimic catches it).
pub fn run_trial(test: fn()) -> libtest_mimic::Completion {
    SKIPPED.with(|s| s.borrow_mut().take());
    test();
    match SKIPPED.with(|s| s.borrow_mut().take()) {
        Some(reason) => libtest_mimic::Completion::ignored_with(reason),
        None => libtest_mimic::Completion::Completed,
    }
}

pub fn have_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .any(|d| d.join(name).is_file())
        })
        .unwrap_or(false);
    found || skip(&format!("{name} is not installed"))
}

/// Whether Nix can evaluate here, for this user: `nix --version` runs and a trivial flake-less
/// evaluation succeeds (nix on PATH is not enough: a user without a writable store or daemon
/// fails every evaluation).
pub fn have_nix() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = OK.get_or_init(|| {
        let ran = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if !ran(Command::new("nix").arg("--version")) {
            return Err("nix is not installed".into());
        }
        let eval = ran(Command::new("nix-instantiate").args([
            "--store",
            "dummy://",
            "--readonly-mode",
            "--eval",
            "-E",
            "1 + 1",
        ]));
        let flake = ran(Command::new("nix").args([
            "eval",
            "--extra-experimental-features",
            "nix-command flakes",
            "--expr",
            "1 + 1",
        ]));
        match (eval, flake) {
            (true, true) => Ok(()),
            _ => Err("nix cannot evaluate for this user (no usable store)".into()),
        }
    });
    match r {
        Ok(()) => true,
        Err(why) => skip(why),
    }
}

pub fn is_root() -> bool {
    // The effective uid, from /proc/self/status ("Uid: real effective saved fs").
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    euid == Some(0) || skip("needs root (loop devices)")
}

/// A command by name, found on PATH or in /usr/sbin.
pub fn tool(name: &str) -> Command {
    for d in ["/usr/sbin", "/sbin"] {
        let p = Path::new(d).join(name);
        if p.is_file() && which(name).is_none() {
            return Command::new(p);
        }
    }
    Command::new(name)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fixture zips, made once per test process.
pub fn fixture_zip(board: &str, variant: Option<&str>) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let name = format!("{board}-{}.zip", variant.unwrap_or("good"));
    let path = dir.path().join(&name);
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let mut c = Command::new("python3");
        c.arg(GENERATOR).arg(&path).args(["--board", board]);
        if let Some(v) = variant {
            c.args(["--variant", v]);
        }
        if c.get_program() == "python3" && !have_tool("python3") {
            panic!("python3 is needed to generate the fixture firmware zip (fixtures/make-firmware-zip.py)");
        }
        run_ok(&mut c);
    }
    path
}

pub const EEPROM_GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/make-eeprom.py");

/// A synthetic bootloader file of fixtures/make-eeprom.py (pieeprom-2711.bin, recovery-2711.bin,
/// vl805.bin ...), made once per test run.
pub fn eeprom_fixture(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        if !have_tool("python3") {
            panic!("python3 is needed to generate the EEPROM fixtures (fixtures/make-eeprom.py)");
        }
        run_ok(Command::new("python3").arg(EEPROM_GENERATOR).arg(d.path()));
        d
    });
    dir.path().join(name)
}

/// The fixture's files, read from the zip with the zip crate: (path, bytes).
pub fn zip_files(zip: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut a = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut out = vec![];
    for i in 0..a.len() {
        let mut f = a.by_index(i).unwrap();
        if f.is_dir() {
            continue;
        }
        let mut d = vec![];
        f.read_to_end(&mut d).unwrap();
        out.push((f.name().unwrap().to_string(), d));
    }
    out
}

pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// pi-burn with a clean environment: no SOURCE_DATE_EPOCH, its own cache, and no
    /// controlling terminal (in a session of its own: a test run from a terminal must not
    /// have pi-burn ask there).
    pub fn pi_burn(&self) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(env!("CARGO_BIN_EXE_pi-burn"));
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        c.current_dir(self.dir.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env("PI_BURN_CACHE_DIR", self.path("cache"))
            .env_remove("XDG_CACHE_HOME");
        for v in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// A copy of the test manifest whose rpi4 v9.0 lives at `url`.
    pub fn manifest_with_url(&self, url: &str) -> PathBuf {
        let text = std::fs::read_to_string(MANIFEST)
            .unwrap()
            .replace("http://127.0.0.1:9/RPi4_UEFI_Firmware_v9.0.zip", url);
        let p = self.path("manifest.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `pi-burn firmware fetch --firmware-zip` of the good rpi4 fixture: the release in the cache.
    pub fn fetch_fixture(&self) -> Output {
        self.pi_burn()
            .args([
                "firmware",
                "fetch",
                "--manifest",
                MANIFEST,
                "--firmware-zip",
            ])
            .arg(fixture_zip("rpi4", None))
            .output()
            .unwrap()
    }

    /// `pi-burn --json devices` (which must succeed) and its row for `dev`.
    pub fn devices_row(&self, dev: &str) -> serde_json::Value {
        let o = self.pi_burn().args(["--json", "devices"]).output().unwrap();
        assert_success(&o);
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        j["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == dev)
            .unwrap_or_else(|| panic!("{dev} not listed: {j}"))
            .clone()
    }

    /// A sparse file of `size` bytes (a device's backing file).
    pub fn sparse_file(&self, name: &str, size: u64) -> PathBuf {
        let p = self.path(name);
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    /// Files under the cache's blobs/ and partial/ directories.
    pub fn cached_blobs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path("cache/blobs"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    /// `pi-burn [global] verify --image IMG` against the good rpi4 fixture with the test manifest,
    /// plus `extra` (`global`: options before the subcommand, such as --json).
    pub fn verify_image(&self, global: &[&str], img: &Path, extra: &[&str]) -> Output {
        self.pi_burn()
            .args(global)
            .args(["verify", "--image"])
            .arg(img)
            .with_fixture(extra)
    }

    /// `pi-burn sdcard DEVICE --yes` from the good rpi4 fixture with the test manifest, plus
    /// `extra`, without a terminal.
    pub fn burn_device(&self, dev: &str, extra: &[&str]) -> Output {
        self.pi_burn()
            .args(["sdcard", dev, "--yes", "--manifest", MANIFEST])
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// `pi-burn verify DEVICE` against the good rpi4 fixture with the test manifest.
    pub fn verify_device(&self, dev: &str) -> Output {
        self.pi_burn()
            .args(["verify", dev, "--manifest", MANIFEST])
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .output()
            .unwrap()
    }

    /// `pi-burn sdcard --image NAME` from the good rpi4 fixture with the test manifest, plus `extra`.
    pub fn sdcard(&self, name: &str, extra: &[&str]) -> Output {
        self.sdcard_with("rpi4", None, name, extra)
    }

    /// `pi-burn sdcard --image NAME` from `board`'s fixture zip (`variant` of it) with the test
    /// manifest, plus `extra`; `--board` is given for a board other than rpi4.
    pub fn sdcard_with(
        &self,
        board: &str,
        variant: Option<&str>,
        name: &str,
        extra: &[&str],
    ) -> Output {
        let mut c = self.pi_burn();
        c.arg("sdcard");
        if board != "rpi4" {
            c.args(["--board", board]);
        }
        c.arg("--image")
            .arg(self.path(name))
            .arg("--firmware-zip")
            .arg(fixture_zip(board, variant))
            .args(["--manifest", MANIFEST])
            .args(extra)
            .output()
            .unwrap()
    }

    /// `pi-burn images --flake FLAKE --out OUT` from the good rpi4 fixture with the test
    /// manifest, plus `extra`.
    pub fn images(&self, flake: &Path, out: &Path, extra: &[&str]) -> Output {
        self.pi_burn()
            .args(["images", "--flake"])
            .arg(flake)
            .arg("--out")
            .arg(out)
            .with_fixture(extra)
    }

    /// `pi-burn inspect --image IMG` with the test manifest.
    pub fn inspect_image(&self, img: &Path) -> Output {
        self.pi_burn()
            .args(["inspect", "--manifest", MANIFEST, "--image"])
            .arg(img)
            .output()
            .unwrap()
    }
}

/// The rest of a command line from the tests: the good rpi4 fixture zip, the test manifest,
/// then `extra`; run.
pub trait WithFixture {
    fn with_fixture(&mut self, extra: &[&str]) -> Output;
}

impl WithFixture for Command {
    fn with_fixture(&mut self, extra: &[&str]) -> Output {
        self.arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(["--manifest", MANIFEST])
            .args(extra)
            .output()
            .unwrap()
    }
}

/// mtools' name for the FAT partition at 1 MiB in a disk image (`-i` of mcopy, mdir, mtype).
pub fn mtools_at(img: &Path) -> String {
    format!("{}@@{}", img.display(), 1u64 << 20)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts that stdout holds `needle`, showing stdout otherwise.
pub fn assert_stdout_has(o: &Output, needle: &str) {
    let out = stdout(o);
    assert!(out.contains(needle), "stdout lacks '{needle}': {out}");
}

/// Asserts that stderr holds `needle`, showing stderr otherwise.
pub fn assert_stderr_has(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
}

pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Asserts a failure with the given exit code whose last stderr line is one `pi-burn: ...` line
/// mentioning every word of `needles`.
pub fn assert_fails_with(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("pi-burn: "),
        "last stderr line is not an error line: {err}"
    );
    for n in needles {
        assert!(last.contains(n), "error line lacks '{n}': {last}");
    }
}

/// The string `field` of every object in the JSON array `list` (names of variables, keys of
/// properties).
pub fn strs<'a>(list: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap())
        .collect()
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `len` bytes at `offset` of `src` into a new file `dst` (a partition for fsck.fat).
pub fn extract(src: &Path, offset: u64, len: u64, dst: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(src).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    std::io::copy(&mut f.take(len), &mut out).unwrap();
}

/// A loop device over a file, detached on drop.
pub struct Loop {
    pub dev: String,
}

impl Loop {
    pub fn attach(file: &Path, sector_size: u64, read_only: bool) -> Self {
        let mut c = tool("losetup");
        c.args(["--show", "-f", "--sector-size", &sector_size.to_string()]);
        if read_only {
            c.arg("-r");
        }
        let dev = run_ok(c.arg(file)).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup gave {dev}");
        Loop { dev }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = tool("losetup").args(["-d", &self.dev]).status();
    }
}

/// `sfdisk --json` of a disk, parsed.
pub fn sfdisk_json(disk: &Path) -> serde_json::Value {
    let out = run_ok(tool("sfdisk").arg("--json").arg(disk));
    serde_json::from_str(&out).unwrap()
}

pub const FAKE_DEVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fake-device.py");

/// Whether fake devices can be made here: root (for loop devices), /dev/fuse, fusermount3 and
/// Debian's python3-fusepy.
pub fn can_fake_devices() -> bool {
    if !(is_root() && have_tool("losetup") && have_tool("fusermount3")) {
        return false;
    }
    if !Path::new("/dev/fuse").exists() {
        return skip("/dev/fuse is missing");
    }
    let fusepy = Command::new("/usr/bin/python3")
        .args(["-c", "import fusepy"])
        .status()
        .is_ok_and(|s| s.success());
    fusepy || skip("python3-fusepy is not installed (/usr/bin/python3 cannot import fusepy)")
}

/// A fake storage device (fixtures/fake-device.py: a FUSE file) behind a loop device: detached,
/// unmounted and stopped on drop.
pub struct FakeDevice {
    child: std::process::Child,
    mnt: PathBuf,
    pub lo: Option<Loop>,
}

impl FakeDevice {
    /// Mounts a fake with `args` (e.g. `["--mode", "wrap", "--claimed", "1G", "--real",
    /// "256M"]`) under `t` and attaches it.
    pub fn start(t: &TestDir, name: &str, args: &[&str]) -> Self {
        let mnt = t.path(name);
        let child = Command::new("/usr/bin/python3")
            .arg(FAKE_DEVICE)
            .arg(&mnt)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let disk = mnt.join("disk");
        let mut fake = FakeDevice {
            child,
            mnt,
            lo: None,
        };
        for _ in 0..100 {
            if disk.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(disk.exists(), "the fake device did not come up");
        fake.lo = Some(Loop::attach(&disk, 512, false));
        fake
    }

    pub fn dev(&self) -> &str {
        &self.lo.as_ref().unwrap().dev
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        // The FUSE process first: its end fails every read still waiting on it (a stalling
        // fake), so the loop device detaches at once instead of after the stalls (50 s).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mnt)
            .status();
        self.lo.take();
    }
}

/// Sectors written to a loop device so far (/sys/block/loopN/stat, field 7), in bytes.
pub fn loop_bytes_written(dev: &str) -> u64 {
    loop_bytes(dev).1
}

/// Bytes read and written on a block device so far, from /sys/block/NAME/stat (sectors of 512
/// bytes, whatever the device's own).
pub fn loop_bytes(dev: &str) -> (u64, u64) {
    let name = Path::new(dev)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
    let f: Vec<u64> = stat
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (f[2] * 512, f[6] * 512)
}

/// Debian ovmf's edk2 for x86-64: its code, and the plain variable store.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS_PLAIN: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// qemu and Debian's ovmf, for the tests that boot edk2 (a skip with the reason otherwise).
pub fn have_ovmf() -> bool {
    if !have_tool("qemu-system-x86_64") {
        return false;
    }
    if !Path::new(OVMF_CODE).exists() || !Path::new(OVMF_VARS_PLAIN).exists() {
        return skip("Debian's ovmf is not installed (/usr/share/OVMF/OVMF_CODE_4M.fd)");
    }
    true
}

/// Boots OVMF (with `vars` as its variable store) under qemu, with `disks` (raw images) attached
/// and `shell_dir` (a directory holding a `startup.nsh`) as a last FAT drive; the serial output
/// as edk2's shell prints it. Asserts that qemu exited on its own (the script ends with
/// `reset -s`), within 300 s.
pub fn ovmf_shell(vars: &Path, disks: &[&Path], shell_dir: &Path) -> String {
    let mut cmd = tool("timeout");
    cmd.args(["300", "qemu-system-x86_64", "-machine", "q35"])
        .args(["-nographic", "-m", "256", "-net", "none", "-no-reboot"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()));
    for d in disks {
        cmd.arg("-drive")
            .arg(format!("format=raw,file={}", d.display()));
    }
    // (vvfat read-write: qemu attaches no read-only IDE disk; it is the test's own dir.)
    cmd.arg("-drive")
        .arg(format!("format=raw,file=fat:rw:{}", shell_dir.display()));
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "qemu: {}\n{text}", stderr(&o));
    text
}
