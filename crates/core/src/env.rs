//! Environment variables given with `-e KEY=VALUE`.

use crate::error::{CoreError, Result, quoted};

/// The `PATH` a container gets when its image and the user set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks one `KEY=VALUE` pair: the key must be non-empty and hold no `=`,
/// white space or control character (NUL included), and the value no NUL,
/// which `execve` could not pass on.
pub fn validate_env(pair: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "invalid environment variable {}: {why}",
            quoted(pair)
        )))
    };
    let Some((key, value)) = pair.split_once('=') else {
        return bad("expected KEY=VALUE");
    };
    if key.is_empty() {
        return bad("the name is empty");
    }
    if key.contains('\0') || value.contains('\0') {
        return bad("it holds NUL");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("the name holds white space or a control character");
    }
    Ok(())
}

/// The environment a process starts with: `PATH` and `HOME` unless given,
/// then the container's pairs, then the exec's (later ones win).
pub fn process_env(container_env: &[String], exec_env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![format!("PATH={DEFAULT_PATH}"), "HOME=/root".into()];
    for pair in container_env.iter().chain(exec_env) {
        let key = pair.split('=').next().unwrap_or_default();
        out.retain(|p| p.split('=').next() != Some(key));
        out.push(pair.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_pairs() {
        validate_env("A=1").unwrap();
        validate_env("A=").unwrap();
        validate_env("A=b=c").unwrap();
        for bad in ["A", "=1", "A B=1"] {
            assert!(
                validate_env(bad)
                    .unwrap_err()
                    .message
                    .contains(&format!("'{bad}'"))
            );
        }
    }

    #[test]
    fn nul_is_refused_in_names_and_values() {
        let err = validate_env("A=x\0y").unwrap_err();
        assert_eq!(
            err.message,
            r#"invalid environment variable "A=x\0y": it holds NUL"#
        );
        let err = validate_env("A\0=1").unwrap_err();
        assert!(err.message.ends_with("it holds NUL"), "{err}");
        let err = validate_env("A\nB=1").unwrap_err();
        assert!(!err.message.contains('\n'), "{err}");
        // A value may hold anything else, newlines included, as with Docker.
        validate_env("A=line1\nline2").unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_pair_is_checked_without_panic(pair in ".*") {
            match validate_env(&pair) {
                Ok(()) => {
                    let (key, value) = pair.split_once('=').unwrap();
                    proptest::prop_assert!(!key.is_empty() && !pair.contains('\0'));
                    // A valid pair survives process_env as it is.
                    let env = process_env(&[], std::slice::from_ref(&pair));
                    proptest::prop_assert_eq!(env.last().map(String::as_str), Some(pair.as_str()));
                    proptest::prop_assert!(!value.contains('\0'));
                }
                Err(e) => {
                    proptest::prop_assert!(e.message.contains(&quoted(&pair)), "{}", e);
                    proptest::prop_assert!(!e.message.chars().any(char::is_control));
                }
            }
        }
    }

    #[test]
    fn later_pairs_win() {
        let env = process_env(&["A=1".into(), "PATH=/bin".into()], &["A=2".into()]);
        assert_eq!(env, vec!["HOME=/root", "PATH=/bin", "A=2"]);
    }
}
