//! Identifiers and names: 12-hex-digit ids, validated names, Linux interface
//! names, random names.

use crate::error::{CoreError, Result, quoted};
use crate::limits::NAME_MAX;
use rand::RngExt;

/// Length of every id cell hands out (containers, images, execs, networks).
pub const ID_LEN: usize = 12;

/// A fresh random id of [`ID_LEN`] lower-case hex digits.
pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

/// Whether `s` could be an id or a prefix of one (1 to 12 lower-case hex digits).
pub fn is_id_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the name of a container, image or network.
///
/// Names start with a letter or digit and go on with letters, digits, `_`,
/// `.` or `-`, at most [`NAME_MAX`] characters: they end up in paths and in
/// the hostname, so `/`, white space, control characters and `.`/`..` (which
/// cannot start a name) are refused.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "invalid {what} name {}: {why}",
            quoted(name)
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > NAME_MAX {
        return bad(&format!("it is longer than {NAME_MAX} characters"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("it must start with a letter or a digit");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(&format!(
            "'{}' is not allowed (only letters, digits, '_', '.' and '-')",
            c.escape_default()
        ));
    }
    Ok(())
}

/// The longest interface name Linux accepts: `IFNAMSIZ` (16) less the NUL.
pub const IFNAME_MAX: usize = 15;

/// Checks a Linux network interface name; `what` says which one (e.g.
/// "interface", "nat interface") and starts the error message.
///
/// The kernel (`dev_valid_name` in `net/core/dev.c`) refuses empty names,
/// names longer than [`IFNAME_MAX`] bytes, `.` and `..`, and names holding
/// `/`, `:` or white space. cell is stricter and allows only ASCII letters,
/// digits, `-`, `_` and `.`, because these names also end up in nftables
/// rules and in the output of `ip`, where anything else is a nuisance.
pub fn validate_ifname(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "invalid {what} name {}: {why}",
            quoted(name)
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > IFNAME_MAX {
        return bad(&format!("at most {IFNAME_MAX} characters"));
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not interface names");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!(
            "'{}' is not allowed (only letters, digits, '-', '_' and '.')",
            c.escape_default()
        ));
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "adoring",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "cool",
    "compassionate",
    "competent",
    "confident",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "naughty",
    "nervous",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const SURNAMES: &[&str] = &[
    "albattani",
    "allen",
    "almeida",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brattain",
    "brown",
    "cerf",
    "chandrasekhar",
    "clarke",
    "colden",
    "cori",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hoover",
    "hopper",
    "hypatia",
    "jang",
    "jennings",
    "johnson",
    "kalam",
    "kapitsa",
    "kepler",
    "khorana",
    "knuth",
    "kowalevski",
    "lalande",
    "lamport",
    "leakey",
    "lovelace",
    "lumiere",
    "mayer",
    "mccarthy",
    "mcclintock",
    "meitner",
    "mendel",
    "minsky",
    "morse",
    "moser",
    "napier",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "pike",
    "poincare",
    "ritchie",
    "rosalind",
    "shannon",
    "shockley",
    "sinoussi",
    "stallman",
    "swartz",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "varahamihira",
    "wilbur",
    "wing",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// A random `adjective_surname` name, as Kleene and Docker give.
pub fn random_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
    format!("{adjective}_{surname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_twelve_hex_digits() {
        for _ in 0..100 {
            let id = new_id();
            assert_eq!(id.len(), 12);
            assert!(is_id_prefix(&id), "{id}");
        }
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn id_prefixes() {
        assert!(is_id_prefix("a1"));
        assert!(!is_id_prefix(""));
        assert!(!is_id_prefix("g1"));
        assert!(!is_id_prefix("A1"));
        assert!(!is_id_prefix("0123456789abc"));
    }

    #[test]
    fn names_are_checked() {
        validate_name("container", "web-1.test_x").unwrap();
        for bad in ["", "a/b", "a b", "-a", "_a", &"x".repeat(65), "a\tb"] {
            let err = validate_name("container", bad).unwrap_err();
            assert!(err.message.contains(&quoted(bad)), "{err}");
        }
    }

    #[test]
    fn names_that_could_escape_or_break_lines_are_refused() {
        for bad in [
            "..",
            ".",
            "../x",
            "a/../b",
            "/etc",
            "a\0b",
            "a\nb",
            "a\rb",
            "\u{1b}[31m",
            "é",
        ] {
            let err = validate_name("network", bad).unwrap_err();
            assert!(err.message.contains(&quoted(bad)), "{err}");
            assert!(
                !err.message.contains('\n') && !err.message.contains('\0'),
                "{err:?}"
            );
        }
        let err = validate_name("container", "a\nb").unwrap_err();
        assert_eq!(
            err.message,
            r#"invalid container name "a\nb": '\n' is not allowed (only letters, digits, '_', '.' and '-')"#
        );
        validate_name("image", &"x".repeat(NAME_MAX)).unwrap();
        let err = validate_name("image", &"x".repeat(NAME_MAX + 1)).unwrap_err();
        assert!(err.message.ends_with("it is longer than 64 characters"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_name_is_checked_without_panic(name in ".*") {
            match validate_name("container", &name) {
                Ok(()) => {
                    proptest::prop_assert!(name.len() <= NAME_MAX && !name.contains('/'));
                    proptest::prop_assert!(!name.starts_with('.') && !name.chars().any(char::is_control));
                }
                Err(e) => {
                    proptest::prop_assert!(e.message.contains(&quoted(&name)), "{}", e);
                    proptest::prop_assert!(!e.message.chars().any(char::is_control));
                }
            }
        }

        #[test]
        fn valid_names_pass(name in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}") {
            proptest::prop_assert!(validate_name("network", &name).is_ok());
        }
    }

    #[test]
    fn random_names_are_valid() {
        for _ in 0..50 {
            let name = random_name();
            validate_name("container", &name).unwrap();
            assert_eq!(name.matches('_').count(), 1, "{name}");
        }
    }

    #[test]
    fn interface_names_are_checked() {
        for good in ["eth0", "cell0", "br-lan_1.10", "a", "x23456789012345"] {
            validate_ifname("interface", good).unwrap();
        }
        let err = validate_ifname("interface", "averyveryverylongname").unwrap_err();
        assert_eq!(
            err.message,
            "invalid interface name 'averyveryverylongname': at most 15 characters"
        );
        assert_eq!(err.kind, crate::ErrorKind::Invalid);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "a b",
            "a\tb",
            "eth\n",
            "é0",
            "x234567890123456",
        ] {
            let err = validate_ifname("nat interface", bad).unwrap_err();
            assert!(err.message.starts_with("invalid nat interface name"), "{err}");
            assert!(err.message.contains(&quoted(bad)), "{err}");
        }
        let err = validate_ifname("interface", "eth0:1").unwrap_err();
        assert!(err.message.contains("':' is not allowed"), "{err}");
    }
}
