//! Randomness from the operating system.

use patterns_core::command::CmdError;

/// Fills `buf` from getrandom(2), the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CmdError> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CmdError::Internal);
        }
        filled += n as usize;
    }
    Ok(())
}
