//! Errno values shown by name: `ENOSPC (No space left on device)`, not `-28`.

/// The symbolic name of errno `e` (either sign, as a CQE's `res` carries it), or `None` for one not listed.
/// The values come from `libc`, so each name matches this platform's number.
pub fn errno_name(e: i32) -> Option<&'static str> {
    use libc::*;
    let names: &[(i32, &str)] = &[
        (EPERM, "EPERM"),
        (ENOENT, "ENOENT"),
        (EINTR, "EINTR"),
        (EIO, "EIO"),
        (ENXIO, "ENXIO"),
        (E2BIG, "E2BIG"),
        (EBADF, "EBADF"),
        (EAGAIN, "EAGAIN"),
        (ENOMEM, "ENOMEM"),
        (EACCES, "EACCES"),
        (EFAULT, "EFAULT"),
        (EBUSY, "EBUSY"),
        (EEXIST, "EEXIST"),
        (ENODEV, "ENODEV"),
        (EISDIR, "EISDIR"),
        (EINVAL, "EINVAL"),
        (ENFILE, "ENFILE"),
        (EMFILE, "EMFILE"),
        (EFBIG, "EFBIG"),
        (ENOSPC, "ENOSPC"),
        (ESPIPE, "ESPIPE"),
        (EROFS, "EROFS"),
        (EPIPE, "EPIPE"),
        (ERANGE, "ERANGE"),
        (ENOSYS, "ENOSYS"),
        (EOVERFLOW, "EOVERFLOW"),
        (EOPNOTSUPP, "EOPNOTSUPP"),
        (ENOBUFS, "ENOBUFS"),
        (ECONNRESET, "ECONNRESET"),
        (ETIMEDOUT, "ETIMEDOUT"),
        (ETIME, "ETIME"),
        (ECANCELED, "ECANCELED"),
        (EDQUOT, "EDQUOT"),
    ];
    let e = e.checked_abs()?;
    names.iter().find(|(v, _)| *v == e).map(|(_, n)| *n)
}

/// `ENOSPC (No space left on device)` for `-28` or `28`; `errno 999 (Unknown error 999)` for one without a
/// listed name; `none` for 0.
pub fn errno_text(e: i32) -> String {
    if e == 0 {
        return "none".into();
    }
    let Some(abs) = e.checked_abs() else {
        return format!("errno {e}");
    };
    let msg = std::io::Error::from_raw_os_error(abs).to_string();
    // std renders "No space left on device (os error 28)": keep the words.
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_owned();
    match errno_name(abs) {
        Some(name) => format!("{name} ({msg})"),
        None => format!("errno {abs} ({msg})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_either_sign() {
        assert_eq!(
            errno_text(-libc::ENOSPC),
            "ENOSPC (No space left on device)"
        );
        assert_eq!(errno_text(libc::EBADF), "EBADF (Bad file descriptor)");
        assert_eq!(errno_text(0), "none");
        assert!(errno_text(4000).starts_with("errno 4000 ("));
        assert_eq!(errno_name(i32::MIN), None);
    }
}
