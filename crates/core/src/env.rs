//! Environment variables given with `-e KEY=VALUE`.

use crate::error::{CoreError, Result};

/// The `PATH` a container gets when its image and the user set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks one `KEY=VALUE` pair: the key must be non-empty and hold no `=`,
/// white space or NUL.
pub fn validate_env(pair: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "invalid environment variable '{pair}': {why}"
        )))
    };
    let Some((key, value)) = pair.split_once('=') else {
        return bad("expected KEY=VALUE");
    };
    if key.is_empty() {
        return bad("the name is empty");
    }
    if key.chars().any(|c| c.is_whitespace() || c == '\0') || value.contains('\0') {
        return bad("it holds white space or NUL in the name, or NUL in the value");
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
    fn later_pairs_win() {
        let env = process_env(&["A=1".into(), "PATH=/bin".into()], &["A=2".into()]);
        assert_eq!(env, vec!["HOME=/root", "PATH=/bin", "A=2"]);
    }
}
