//! The local terminal of an interactive session (`cell run -it`): whether
//! stdin is one, its size, and raw mode, restored when the guard drops.
//!
//! In raw mode every key, Ctrl-C and Ctrl-D included, is a byte for the
//! container's terminal, whose line discipline gives them their meaning;
//! the local one must neither echo nor interpret them.

use anyhow::{Result, bail};
use std::io::IsTerminal;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

/// Docker's words when `-t` is asked for without a terminal.
pub const NOT_A_TTY: &str = "the input device is not a TTY";

/// Fails with [`NOT_A_TTY`] unless stdin is a terminal.
pub fn require_terminal() -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(NOT_A_TTY);
    }
    Ok(())
}

/// The size of the terminal on stdin as `(rows, cols)`; `None` when it is
/// not a terminal or reports no size.
pub fn window_size() -> Option<(u16, u16)> {
    let mut size = MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes one winsize into the pointer, which is
    // valid and large enough.
    let done = unsafe { libc::ioctl(std::io::stdin().as_raw_fd(), libc::TIOCGWINSZ, size.as_mut_ptr()) };
    if done == -1 {
        return None;
    }
    // SAFETY: zero-initialised and, on success, filled by the kernel.
    let size = unsafe { size.assume_init() };
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

/// Stdin's terminal in raw mode until this is dropped (on every way out
/// of the session: return, error, panic).
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode.
    pub fn enable() -> Result<Self> {
        let fd = std::io::stdin().as_raw_fd();
        let mut termios = MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: tcgetattr fills the termios behind the valid pointer.
        if unsafe { libc::tcgetattr(fd, termios.as_mut_ptr()) } == -1 {
            bail!(
                "failed to read the terminal settings: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: initialised by tcgetattr above.
        let saved = unsafe { termios.assume_init() };
        let mut raw = saved;
        // SAFETY: cfmakeraw only changes the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: tcsetattr reads the termios behind the valid pointer.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } == -1 {
            bail!(
                "failed to put the terminal in raw mode: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the saved termios behind a valid pointer.
        unsafe { libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSADRAIN, &self.saved) };
    }
}
