//! Every system call pi-burn makes that std does not wrap, behind safe wrappers: the
//! block-device ioctls, vectored positioned writes, page-cache advice and the SIGPIPE action.
//! This is the only module allowed `unsafe` (the crate denies it elsewhere).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

// The ioctl numbers of <linux/fs.h>, encoded as <asm-generic/ioctl.h> does: the encoding of
// x86, Arm, RISC-V, LoongArch and s390. Alpha, MIPS, PowerPC and SPARC encode the direction
// bits otherwise: refused at compile time rather than sending them wrong numbers.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x"
)))]
compile_error!("pi-burn's block-device ioctl numbers use the asm-generic encoding; this architecture encodes them otherwise (see blockdev/sys.rs)");

/// `_IOC(dir, type, nr, size)` of asm-generic: dir at bit 30, size at 16, type at 8.
const fn ioc(
    dir: libc::c_ulong,
    ty: libc::c_ulong,
    nr: libc::c_ulong,
    size: usize,
) -> libc::c_ulong {
    (dir << 30) | ((size as libc::c_ulong) << 16) | (ty << 8) | nr
}
const IOC_NONE: libc::c_ulong = 0;
const IOC_READ: libc::c_ulong = 2;
const BLKRRPART: libc::c_ulong = ioc(IOC_NONE, 0x12, 95, 0); // _IO(0x12, 95)
const BLKSSZGET: libc::c_ulong = ioc(IOC_NONE, 0x12, 104, 0); // _IO(0x12, 104)
const BLKGETSIZE64: libc::c_ulong = ioc(IOC_READ, 0x12, 114, std::mem::size_of::<u64>()); // _IOR(0x12, 114, size_t)

// The values <linux/fs.h> gives on x86_64 and aarch64, checked at compile time.
const _: () = assert!(BLKRRPART == 0x125F && BLKSSZGET == 0x1268 && BLKGETSIZE64 == 0x8008_1272);

/// The device's size in bytes.
pub fn size_bytes(f: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// The logical sector size the kernel uses for the device.
pub fn logical_sector_size(f: &File) -> io::Result<u64> {
    let mut ss: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at `ss`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET as _, &mut ss as *mut libc::c_int) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ss as u64)
}

/// Asks the kernel to read the partition table again.
pub fn reread_partitions(f: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART as _, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Device number (`st_rdev`) of an open block device, or of a path.
pub fn rdev_of(f: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(f.metadata()?.rdev())
}

pub fn major(dev: u64) -> u64 {
    libc::major(dev) as u64
}

pub fn minor(dev: u64) -> u64 {
    libc::minor(dev) as u64
}

/// Drops the page cache of `f`, so that reads come from the medium.
pub fn drop_cache(f: &File) {
    // SAFETY: posix_fadvise only takes the descriptor and a range; failure is harmless.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// One `pwritev` of `bufs` at `offset`: the bytes the kernel took.
pub fn pwritev(f: &File, bufs: &[&[u8]], offset: u64) -> io::Result<usize> {
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
    let count = libc::c_int::try_from(iov.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
    // SAFETY: every iovec points into a live slice of `bufs` for the duration of the call, and
    // the kernel only reads from them.
    let n = unsafe { libc::pwritev(f.as_raw_fd(), iov.as_ptr(), count, off) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Slices per vectored write (Linux's IOV_MAX is 1024).
pub const IOV_BATCH: usize = 1024;

/// Writes `bufs` back to back at `offset` of `f`, resuming after short writes. Returns the
/// bytes written.
pub fn pwrite_all(f: &File, offset: u64, bufs: &[&[u8]]) -> std::io::Result<u64> {
    let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let mut done = 0u64;
    let mut first = 0usize;
    let mut skip = 0usize;
    while first < bufs.len() && bufs[first].is_empty() {
        first += 1;
    }
    while first < bufs.len() {
        let batch: Vec<&[u8]> = bufs[first..]
            .iter()
            .take(IOV_BATCH)
            .enumerate()
            .map(|(i, b)| if i == 0 { &b[skip..] } else { *b })
            .collect();
        let n = match pwritev(f, &batch, offset + done) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "the target accepted no more bytes",
            ));
        }
        let mut n = n as usize;
        done += n as u64;
        // Step past what was written, and past empty slices.
        while first < bufs.len() {
            let left = bufs[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                break;
            }
        }
    }
    debug_assert_eq!(done, total);
    Ok(done)
}

/// Restores the default action of SIGPIPE, so that a closed pipe ends the program quietly like
/// any Unix filter. Call it first thing, before any other thread exists.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's action to SIG_DFL has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Set by SIGINT/SIGTERM.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Which of them arrived (the signal number).
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
/// Devices are being written: an interrupt is left to the write engine, which stops, wipes
/// the table areas it touched and says so.
static WRITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(sig: libc::c_int) {
    use std::sync::atomic::Ordering;
    SIGNAL.store(sig, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    if !WRITING.load(Ordering::SeqCst) {
        const MSG: &[u8] =
            b"\npi-burn: interrupted: no device was written (an image file being made is left as it was)\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(130);
        }
    }
}

/// Ctrl-C (and SIGTERM): before and after device writes, stop at once with exit 130; during
/// them, let the engine stop cleanly (see [`Writing`]).
pub fn handle_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches atomics and calls async-signal-safe functions; the
        // sigaction struct is zeroed and then filled in completely.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_interrupt as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            // No SA_RESTART: a read blocked on a stalled input returns EINTR, so the writer
            // hears of the interrupt now rather than when the input moves again.
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether an interrupt arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// What interrupted the run, for messages: "Ctrl-C" (SIGINT) or "SIGTERM".
pub fn interrupt_name() -> &'static str {
    match SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        libc::SIGTERM => "SIGTERM",
        _ => "Ctrl-C",
    }
}

/// What a child of [`answer_from_child`] wrote, and whether it finished.
pub struct Answer {
    pub bytes: Vec<u8>,
    /// The child ended of itself, successfully, within the time; else it was killed and
    /// `bytes` is what it had written by then.
    pub complete: bool,
}

/// The write end of the pipe a child answers on.
struct PipeWriter(RawFd);

impl io::Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if write_all_fd(self.0, buf) {
            Ok(buf.len())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `work` in a forked child, which writes its answer (at most `limit` bytes), and
/// returns what it wrote within `within`; a child not finished by then is killed and left
/// behind.
///
/// For opening and reading a device that may not answer: a read stalled in the kernel
/// cannot be interrupted, and the device's last close, and any open of it meanwhile, waits
/// for it; in this process that would hold its exit (and its stdout) until the kernel gives
/// up. The child closes every descriptor but the pipe it answers on first, and opens the
/// device itself, so a child stuck there holds nothing of this process's.
///
/// Only for a single-threaded caller (`pi-burn devices`): the child then runs `work` with
/// every lock in a known state. That precondition is checked (the process's threads counted
/// in /proc): with another thread running, nothing is forked and this is an error. A panic
/// or an error in `work` ends the child (an error here).
pub fn answer_from_child(
    within: std::time::Duration,
    limit: usize,
    work: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<Answer> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "not forking a reader with {threads} threads running (another thread may hold a lock the child would need)"
        )));
    }
    fork_answer(within, limit, work)
}

/// [`answer_from_child`] without its check (the unit test runs under the test harness, whose
/// threads hold no lock the child takes).
fn fork_answer(
    within: std::time::Duration,
    limit: usize,
    work: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<Answer> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: fork(2); the child below never returns into the caller: it ends in _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child just forked: close everything but the pipe's write end.
        unsafe { close_all_but(&[w]) };
        let mut out = PipeWriter(w);
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut out))) {
            Ok(Ok(())) => 0,
            Ok(Err(_)) => 1,
            Err(_) => 2,
        };
        // SAFETY: _exit(2) ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the pipe's write end; the child has its own.
    unsafe { libc::close(w) };
    if pid < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing the read end this function opened.
        unsafe { libc::close(r) };
        return Err(e);
    }
    let got = read_until(r, within, limit);
    // SAFETY: closing the read end this function opened.
    unsafe { libc::close(r) };
    let status = match &got {
        Ok((_, true)) => reap(pid, std::time::Duration::from_secs(1)),
        _ => None,
    };
    if status.is_none() {
        // SAFETY: kill(2) of our own child; it dies once its read returns.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // Reaped now if the kill took at once; else left to init when this process ends.
        let _ = reap(pid, std::time::Duration::from_millis(100));
    }
    let (bytes, ended) = got?;
    match status {
        Some(0) => Ok(Answer {
            bytes,
            complete: true,
        }),
        Some(code) => Err(io::Error::other(format!(
            "the reading child process failed (exit {code})"
        ))),
        None if ended => Err(io::Error::other(
            "the reading child process closed its answer but did not end",
        )),
        None => Ok(Answer {
            bytes,
            complete: false,
        }),
    }
}

/// Writes all of `buf` to `fd`; false on an error.
fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: write(2) from a live slice of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads `fd` within `within`: what it gave and whether it reached its end by then; an error
/// past `limit` bytes.
fn read_until(fd: RawFd, within: std::time::Duration, limit: usize) -> io::Result<(Vec<u8>, bool)> {
    let deadline = std::time::Instant::now() + within;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok((out, false));
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd that lives on this stack frame.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        // SAFETY: read(2) into `chunk`, which has room for `chunk.len()` bytes.
        let got = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        match usize::try_from(got) {
            Ok(0) => return Ok((out, true)),
            Ok(k) => {
                if out.len() + k > limit {
                    return Err(io::Error::other(format!(
                        "the reading child process answered more than {limit} bytes"
                    )));
                }
                out.extend_from_slice(&chunk[..k]);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The exit code of child `pid` once it has ended (128 + the signal for one killed), waiting
/// at most `within`; `None` if it has not ended by then.
fn reap(pid: libc::pid_t, within: std::time::Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if r < 0 || std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Closes every file descriptor but those in `keep` (in a forked child).
///
/// # Safety
/// Only for a child just forked: descriptors other code of the parent uses are closed.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|&k| libc::c_uint::try_from(k).ok())
        .collect();
    keep.sort_unstable();
    let mut from: libc::c_uint = 0;
    let mut ok = true;
    for k in keep.iter().copied().chain([libc::c_uint::MAX]) {
        if k > from {
            let to = if k == libc::c_uint::MAX { k } else { k - 1 };
            // SAFETY: close_range(2) on descriptor numbers only.
            ok &= unsafe { libc::syscall(libc::SYS_close_range, from, to, 0) } == 0;
        }
        from = k.saturating_add(1);
    }
    if !ok {
        // Kernels before 5.9: the descriptors a pi-burn run can have.
        for d in 0..1024u32 {
            if keep.binary_search(&d).is_err() {
                // SAFETY: close(2) of a descriptor number; EBADF for unused ones is harmless.
                unsafe { libc::close(d as RawFd) };
            }
        }
    }
}

/// While alive, an interrupt does not end the program: the write engine sees
/// [`interrupted`] and stops.
pub struct Writing(());

impl Writing {
    pub fn start() -> Self {
        WRITING.store(true, std::sync::atomic::Ordering::SeqCst);
        Writing(())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs `f` (which starts threads) with SIGINT and SIGTERM blocked, so that the threads it
/// starts inherit the block and an interrupt reaches the calling thread.
pub fn with_interrupts_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the sigset_t values are initialised by sigemptyset before use; pthread_sigmask
    // only changes this thread's mask and writes the old one into `old`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The watched run (`crate::watch`): pi-burn's work in a child process, so that a device that
// stops answering (a read or write that never completes leaves its process in uninterruptible
// sleep, deaf even to SIGKILL) cannot hold the run, its output or its exit.

/// Which side of the fork this is.
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// A pipe's two ends (read, write), close-on-exec.
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two new descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made by pipe2 and are owned by nothing else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// fork(2), only while this process has one thread (checked in /proc): the child continues
/// this program with every lock in a known state.
pub fn fork_process() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "not forking with {threads} threads running"
        )));
    }
    // SAFETY: fork(2) in a single-threaded process; both sides continue safe Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Makes `fd` also descriptor `target` (dup2), e.g. a pipe as standard output.
pub fn dup_onto(fd: &impl AsRawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on two descriptor numbers; `fd` is open (borrowed).
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which of `fds` have data (or their end) within `timeout_ms`; interrupted waits answer none.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll(2) on an array of pollfd that lives for the call.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    p.iter()
        .map(|x| x.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect()
}

/// Reads what is there from `fd` (0 at its end).
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: read(2) into a buffer of the length given.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Writes all of `buf` to `fd` (false when it cannot).
pub fn write_fd(fd: RawFd, buf: &[u8]) -> bool {
    write_all_fd(fd, buf)
}

/// How a child ended: its exit code, or 128 + the signal that killed it; `None` while it runs.
pub fn child_ended(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid(2) with WNOHANG on our own child; status is a valid int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r != pid {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) of our own child.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last SIGINT/SIGTERM the watching parent received (0: none), and whether a process
/// sent it (kill, timeout, systemd) rather than the terminal (Ctrl-C reaches the child too).
static WATCH_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static WATCH_FROM_PROCESS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_watch_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    use std::sync::atomic::Ordering;
    // SAFETY: the kernel hands a valid siginfo_t to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SI_USER (0) and SI_QUEUE (-1) and the other negative codes come from processes;
    // SI_KERNEL (0x80) from the terminal driver.
    WATCH_FROM_PROCESS.store(code <= 0, Ordering::SeqCst);
    WATCH_SIGNAL.store(sig, Ordering::SeqCst);
}

/// The watching parent's SIGINT and SIGTERM: recorded (see [`watch_signal`]), never fatal.
pub fn watch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches atomics; the sigaction struct is zeroed and then
        // filled in completely.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_watch_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal the watching parent received since the last call (0: none), and whether a
/// process sent it.
pub fn watch_signal() -> (libc::c_int, bool) {
    use std::sync::atomic::Ordering;
    (
        WATCH_SIGNAL.swap(0, Ordering::SeqCst),
        WATCH_FROM_PROCESS.load(Ordering::SeqCst),
    )
}

/// Where a watched child tells its parent what it does to each device (-1: not watched).
static STATE_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// In a watched child: `fd` is where [`tell`] writes.
pub fn set_state_fd(fd: RawFd) {
    STATE_FD.store(fd, std::sync::atomic::Ordering::SeqCst);
}

/// Tells the watching parent one line (what is being done to which device); nothing when the
/// run is not watched. One write of a short line: the pipe keeps it whole.
pub fn tell(line: &str) {
    let fd = STATE_FD.load(std::sync::atomic::Ordering::SeqCst);
    if fd >= 0 {
        let mut l = line.replace('\n', " ");
        l.truncate(400);
        l.push('\n');
        write_all_fd(fd, l.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn a_child_answers_or_is_left_behind_within_its_time() {
        use std::io::{Read, Write};
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        std::fs::write(&p, vec![7u8; 100_000]).unwrap();
        let copy = |out: &mut dyn Write| {
            let mut v = vec![];
            File::open(&p)?.read_to_end(&mut v)?;
            out.write_all(&v)
        };
        // Under the test harness (threads): refused, nothing forked.
        let e = answer_from_child(Duration::from_secs(5), 1 << 20, copy)
            .err()
            .unwrap();
        assert!(e.to_string().contains("threads running"), "{e}");
        let a = fork_answer(Duration::from_secs(5), 1 << 20, copy).unwrap();
        assert!(a.complete);
        assert_eq!(a.bytes, vec![7u8; 100_000]);
        let start = Instant::now();
        let a = fork_answer(Duration::from_millis(300), 16, |out| {
            out.write_all(b"first\n")?;
            std::thread::sleep(Duration::from_secs(20));
            out.write_all(b"second\n")
        })
        .unwrap();
        assert!(!a.complete);
        assert_eq!(a.bytes, b"first\n");
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        let e = fork_answer(Duration::from_secs(5), 16, copy).err().unwrap();
        assert!(e.to_string().contains("more than 16 bytes"), "{e}");
        let e = fork_answer(Duration::from_secs(5), 16, |_| panic!("in the child"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("failed (exit 2)"), "{e}");
        let e = fork_answer(Duration::from_secs(5), 16, |_| Err(io::Error::other("no")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("failed (exit 1)"), "{e}");
    }

    #[test]
    fn pwrite_all_writes_every_slice_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let a = vec![1u8; 5000];
        let b = [2u8; 3];
        let c: Vec<u8> = vec![];
        let d = vec![3u8; 70000];
        let slices: Vec<&[u8]> = (0..1500)
            .map(|i| if i % 2 == 0 { &b[..] } else { &c[..] })
            .chain([&a[..], &d[..]])
            .collect();
        let n = pwrite_all(&f, 10, &slices).unwrap();
        assert_eq!(n, 750 * 3 + 5000 + 70000);
        let back = std::fs::read(&p).unwrap();
        assert_eq!(back.len() as u64, 10 + n);
        assert!(back[..10].iter().all(|x| *x == 0));
        assert!(back[10..10 + 2250].iter().all(|x| *x == 2));
        assert!(back[10 + 2250..10 + 2250 + 5000].iter().all(|x| *x == 1));
        assert!(back[10 + 7250..].iter().all(|x| *x == 3));
    }
}
