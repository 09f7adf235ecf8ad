//! SIGTERM and SIGINT without the libc crate: the C library's own `signal`, `pipe2`,
//! `fcntl`, `write` and `raise` are declared here directly (glibc, which every Rust
//! program on Debian links anyway).
//!
//! The handler does the one async-signal-safe thing it needs: it writes the signal number
//! to a non-blocking pipe (the self-pipe trick). A thread blocked on the pipe's other end
//! calls the registered listeners in ordinary Rust. With no listener registered (no
//! `run()` in progress), the signal gets its default action back and is raised again,
//! so the process still terminates as it would without the SDK.

use crate::pool::lock;
use std::fs::File;
use std::io::Read;
use std::os::raw::c_int;
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::thread;

pub(crate) const SIGINT: c_int = 2;
pub(crate) const SIGTERM: c_int = 15;

const SIG_DFL: usize = 0;
const F_SETFL: c_int = 4;
const O_NONBLOCK: c_int = 0o4000;
const O_CLOEXEC: c_int = 0o2000000;

extern "C" {
    fn signal(signum: c_int, handler: usize) -> usize;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
    fn raise(sig: c_int) -> c_int;
    fn __errno_location() -> *mut c_int;
}

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static INSTALL: Once = Once::new();

type Listener = Box<dyn Fn(c_int) + Send + 'static>;
static LISTENERS: Mutex<Vec<(u64, Listener)>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);

extern "C" fn on_signal(sig: c_int) {
    // Only async-signal-safe calls here; errno is restored for the interrupted code.
    unsafe {
        let errno = __errno_location();
        let saved = *errno;
        let fd = WRITE_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let b = sig as u8;
            let _ = write(fd, &b, 1);
        }
        *errno = saved;
    }
}

/// Call `listener` with the signal number on every SIGTERM or SIGINT until it is removed.
/// Installs the handlers on first use.
pub(crate) fn listen(listener: Listener) -> u64 {
    install();
    let id = {
        let mut n = lock(&NEXT_ID);
        *n += 1;
        *n
    };
    lock(&LISTENERS).push((id, listener));
    id
}

pub(crate) fn unlisten(id: u64) {
    lock(&LISTENERS).retain(|(i, _)| *i != id);
}

fn install() {
    INSTALL.call_once(|| {
        let mut fds: [c_int; 2] = [-1, -1];
        // SAFETY: plain C calls on our own fds; the handler only touches WRITE_FD.
        unsafe {
            if pipe2(fds.as_mut_ptr(), O_CLOEXEC) != 0 {
                eprintln!("logomesh: cannot create the signal pipe; SIGTERM will end the process without a clean shutdown");
                return;
            }
            // A full pipe must never block the handler; the reader end stays blocking.
            fcntl(fds[1], F_SETFL, O_NONBLOCK);
        }
        WRITE_FD.store(fds[1], Ordering::SeqCst);
        // SAFETY: fds[0] is a fresh pipe end owned from here on by this File alone.
        let mut reader = unsafe { File::from_raw_fd(fds[0]) };
        let spawned = thread::Builder::new().name("logomesh-signals".into()).spawn(move || {
            let mut b = [0u8; 1];
            while let Ok(1) = reader.read(&mut b) {
                dispatch(c_int::from(b[0]));
            }
        });
        if let Err(e) = spawned {
            eprintln!("logomesh: cannot start the signal thread ({e}); SIGTERM will end the process without a clean shutdown");
            return;
        }
        let handler: extern "C" fn(c_int) = on_signal;
        unsafe {
            signal(SIGTERM, handler as usize);
            signal(SIGINT, handler as usize);
        }
    });
}

fn dispatch(sig: c_int) {
    let listeners = lock(&LISTENERS);
    if listeners.is_empty() {
        drop(listeners);
        // Nobody is serving: behave as if the SDK had never touched the signal.
        unsafe {
            signal(sig, SIG_DFL);
            raise(sig);
        }
        return;
    }
    for (_, l) in listeners.iter() {
        l(sig);
    }
}
