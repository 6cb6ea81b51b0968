//! `pause`: the first process of every pod. It holds the pod's namespaces (network, IPC,
//! UTS) for the pod's other containers, reaps the zombies that end up parented to it when
//! the pod shares one PID namespace, and exits 0 on SIGTERM or SIGINT so that stopping a
//! pod is quick. Built as a static binary: the pause image holds nothing else.

use std::process::ExitCode;

/// Reaps every child that has exited. `waitpid` with `WNOHANG` returns 0 when children
/// remain that have not exited and -1 (ECHILD) when none remain.
fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: `waitpid` only writes the status through the valid pointer it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

extern "C" fn on_terminate(_signal: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe; nothing needs flushing.
    unsafe { libc::_exit(0) }
}

extern "C" fn on_child(_signal: libc::c_int) {
    // Reaping from the handler keeps the main loop a bare `pause()`. `waitpid` is
    // async-signal-safe; errno is saved so that the interrupted code never sees it change.
    // SAFETY: `__errno_location` returns the calling thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    reap_children();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> std::io::Result<()> {
    // SAFETY: a zeroed `sigaction` is a valid value to fill in; the handler is a plain
    // `extern "C"` function that only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("pause {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // SAFETY: `getpid` has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        eprintln!("pause: warning: not running as PID 1");
    }
    let installed = install(libc::SIGTERM, on_terminate)
        .and_then(|()| install(libc::SIGINT, on_terminate))
        .and_then(|()| install(libc::SIGCHLD, on_child));
    if let Err(e) = installed {
        eprintln!("pause: installing signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    // Children that exited before the handler was installed.
    reap_children();
    loop {
        // SAFETY: `pause` has no preconditions; it returns after each handled signal.
        unsafe { libc::pause() };
    }
}
