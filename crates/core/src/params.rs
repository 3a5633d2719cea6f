//! Jail-style parameters given with `-J KEY[=VALUE]`.
//!
//! FreeBSD passes these to jail(8). cell knows the ones that have a meaning
//! on Linux and refuses the others, so that a typo is not silently ignored.

use crate::error::{CoreError, Result, quoted};

/// `allow.raw_sockets`: keep `CAP_NET_RAW` (ping works).
pub const ALLOW_RAW_SOCKETS: &str = "allow.raw_sockets";

const KNOWN: &[&str] = &[ALLOW_RAW_SOCKETS];

/// Checks one parameter: a known key, and a boolean value if one is given.
pub fn validate_param(param: &str) -> Result<()> {
    let (key, value) = param.split_once('=').unwrap_or((param, "true"));
    if !KNOWN.contains(&key) {
        return Err(CoreError::invalid(format!(
            "unknown parameter {} (known: {})",
            quoted(key),
            KNOWN.join(", ")
        )));
    }
    parse_bool(value).map(|_| ()).ok_or_else(|| {
        CoreError::invalid(format!(
            "invalid value {} of parameter '{key}' (expected true or false)",
            quoted(value)
        ))
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Whether the parameter `key` is set to true among `params` (the last wins).
pub fn is_enabled(params: &[String], key: &str) -> bool {
    params
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, "true"));
            (k == key).then(|| parse_bool(v).unwrap_or(false))
        })
        .next_back()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_params_only() {
        validate_param("allow.raw_sockets").unwrap();
        validate_param("allow.raw_sockets=false").unwrap();
        assert!(
            validate_param("allow.mount")
                .unwrap_err()
                .message
                .contains("'allow.mount'")
        );
        assert!(
            validate_param("allow.raw_sockets=maybe")
                .unwrap_err()
                .message
                .contains("'maybe'")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_param_is_checked_without_panic(param in ".*") {
            match validate_param(&param) {
                Ok(()) => proptest::prop_assert!(param.starts_with(ALLOW_RAW_SOCKETS)),
                Err(e) => {
                    let (key, value) = param.split_once('=').unwrap_or((&param, "true"));
                    proptest::prop_assert!(
                        e.message.contains(&quoted(key)) || e.message.contains(&quoted(value)),
                        "{}", e
                    );
                    proptest::prop_assert!(!e.message.chars().any(char::is_control));
                }
            }
        }

        #[test]
        fn valid_params_round_trip(value in proptest::sample::select(vec!["true", "1", "yes", "false", "0", "no"])) {
            let param = format!("{ALLOW_RAW_SOCKETS}={value}");
            proptest::prop_assert!(validate_param(&param).is_ok());
            let on = matches!(value, "true" | "1" | "yes");
            proptest::prop_assert_eq!(is_enabled(&[param], ALLOW_RAW_SOCKETS), on);
        }
    }

    #[test]
    fn last_setting_wins() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_enabled(&p(&["allow.raw_sockets"]), ALLOW_RAW_SOCKETS));
        assert!(!is_enabled(
            &p(&["allow.raw_sockets", "allow.raw_sockets=0"]),
            ALLOW_RAW_SOCKETS
        ));
        assert!(!is_enabled(&p(&[]), ALLOW_RAW_SOCKETS));
    }
}
