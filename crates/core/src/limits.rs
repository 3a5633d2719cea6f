//! The limits cell puts on user input, in one place so that the API, the
//! CLI, the README and the tests agree on them.
//!
//! Each limit exists because something below would break or be abused
//! without it: a name ends up in paths and hostnames, a request body is
//! held in memory, a stop timeout becomes a deadline that must not overflow.

use crate::error::{CoreError, Result, quoted};
use std::time::Duration;

/// The longest name of a container, image or network, in bytes.
pub const NAME_MAX: usize = 64;

/// The largest request body celld reads (1 MiB); a larger one is refused
/// with 413 before it is parsed.
pub const BODY_MAX: usize = 1 << 20;

/// The longest wait between SIGTERM and SIGKILL that `stop` and `restart`
/// accept: one day. Longer is a mistake, and `u64::MAX` seconds would
/// overflow the deadline.
pub const STOP_TIMEOUT_MAX_SECS: u64 = 24 * 60 * 60;

/// The shortest IPv4 prefix a network's subnet may have: /8. A shorter one
/// would swallow a large part of the address space (and `0.0.0.0/0` all of
/// it, with the host's default route).
pub const SUBNET_PREFIX_MIN_V4: u8 = 8;

/// The shortest IPv6 prefix a network's subnet6 may have: /16, for the same
/// reason as [`SUBNET_PREFIX_MIN_V4`].
pub const SUBNET_PREFIX_MIN_V6: u8 = 16;

/// Checks a stop timeout in seconds against [`STOP_TIMEOUT_MAX_SECS`].
pub fn stop_timeout(secs: u64) -> Result<Duration> {
    if secs > STOP_TIMEOUT_MAX_SECS {
        return Err(CoreError::invalid(format!(
            "invalid timeout '{secs}': at most {STOP_TIMEOUT_MAX_SECS} seconds (one day)"
        )));
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a stop timeout given as text (a query parameter or a flag) and
/// checks it with [`stop_timeout`].
pub fn parse_stop_timeout(text: &str) -> Result<Duration> {
    let secs = text.parse::<u64>().map_err(|_| {
        CoreError::invalid(format!(
            "invalid timeout {}: expected whole seconds from 0 to {STOP_TIMEOUT_MAX_SECS}",
            quoted(text)
        ))
    })?;
    stop_timeout(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stop_timeouts_are_bounded() {
        assert_eq!(parse_stop_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_stop_timeout("86400").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_stop_timeout("86401").unwrap_err().message,
            "invalid timeout '86401': at most 86400 seconds (one day)"
        );
        let err = parse_stop_timeout("18446744073709551615").unwrap_err();
        assert!(err.message.contains("'18446744073709551615'"), "{err}");
        for bad in ["", "-1", "1.5", "18446744073709551616", "ten"] {
            let err = parse_stop_timeout(bad).unwrap_err();
            assert!(err.message.contains(&format!("'{bad}'")), "{err}");
        }
        let err = parse_stop_timeout("1\n2").unwrap_err();
        assert!(!err.message.contains('\n'), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_timeout_text_is_checked_without_panic(text in ".*") {
            match parse_stop_timeout(&text) {
                Ok(d) => prop_assert!(d.as_secs() <= STOP_TIMEOUT_MAX_SECS),
                Err(e) => {
                    prop_assert!(e.message.contains(&quoted(&text)), "{}", e);
                    prop_assert!(!e.message.contains('\n'));
                }
            }
        }
    }
}
