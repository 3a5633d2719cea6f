//! The command a container or an exec runs (`cell run IMAGE CMD...`,
//! `cell exec CONTAINER CMD...`).
//!
//! The arguments become C strings for `execve`, so a NUL in one cannot be
//! passed on: it is refused here, when the request comes in, rather than
//! failing later in the supervisor with the container half-made.

use crate::error::{CoreError, Result, quoted};

/// Checks a command: no argument holds NUL, and the program (the first
/// argument) is not empty. An empty command is allowed: it means the
/// image's own.
pub fn validate_cmd(cmd: &[String]) -> Result<()> {
    if let Some(arg) = cmd.iter().find(|a| a.contains('\0')) {
        return Err(CoreError::invalid(format!(
            "invalid command argument {}: it holds NUL",
            quoted(arg)
        )));
    }
    if cmd.first().is_some_and(|program| program.is_empty()) {
        return Err(CoreError::invalid("invalid command '': the program is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nul_and_empty_programs_are_refused() {
        validate_cmd(&[]).unwrap();
        validate_cmd(&cmd(&["sh", "-c", "echo 'a b'", ""])).unwrap();
        let err = validate_cmd(&cmd(&["sh", "a\0b"])).unwrap_err();
        assert_eq!(err.message, r#"invalid command argument "a\0b": it holds NUL"#);
        assert_eq!(err.kind, crate::ErrorKind::Invalid);
        let err = validate_cmd(&cmd(&["", "x"])).unwrap_err();
        assert_eq!(err.message, "invalid command '': the program is empty");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn commands_are_refused_exactly_when_they_hold_nul(args in proptest::collection::vec(".*", 0..4)) {
            let has_nul = args.iter().any(|a| a.contains('\0'));
            let empty_program = args.first().is_some_and(|a| a.is_empty());
            match validate_cmd(&args) {
                Ok(()) => prop_assert!(!has_nul && !empty_program),
                Err(e) => {
                    prop_assert!(has_nul || empty_program);
                    prop_assert!(!e.message.contains('\n') && !e.message.contains('\0'));
                }
            }
        }
    }
}
