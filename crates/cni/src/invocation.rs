//! [`Invocation`]: the `CNI_*` environment variables of one call, checked
//! once (SPEC.md, "Parameters"), so the operations take values that cannot
//! be wrong. Which variables each command needs follows the spec's
//! "Required environment parameters"; a missing or invalid one is a
//! [`Code::InvalidEnvironment`] error naming it.

use crate::error::{CniError, Code, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The operation a runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach it; succeeds when already detached.
    Del,
    /// Verify an attachment against the previous result.
    Check,
    /// Say whether ADD would work now.
    Status,
    /// Print the versions the plugin speaks.
    Version,
    /// Remove every attachment the runtime does not name as valid.
    Gc,
}

impl Command {
    /// The command as `CNI_COMMAND` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
            Self::Gc => "GC",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "VERSION" => Self::Version,
            "GC" => Self::Gc,
            _ => {
                return Err(CniError::new(
                    Code::InvalidEnvironment,
                    format!("CNI_COMMAND '{text}' is not one of ADD, DEL, CHECK, STATUS, VERSION, GC"),
                ));
            }
        })
    }
}

/// One call's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The operation.
    pub command: Command,
    /// `CNI_CONTAINERID`; empty for STATUS, VERSION and GC.
    pub container_id: String,
    /// `CNI_NETNS`; `None` when unset or empty (allowed on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`; empty for STATUS, VERSION and GC.
    pub ifname: String,
    /// `CNI_ARGS` as key-value pairs.
    pub args: BTreeMap<String, String>,
}

impl Invocation {
    /// Reads the process's environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// Reads the variables `var` gives, as the runtime set them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let missing = |key: &str| CniError::new(Code::InvalidEnvironment, format!("{key} is not set"));
        let command = Command::parse(&var("CNI_COMMAND").ok_or_else(|| missing("CNI_COMMAND"))?)?;
        let per_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let mut inv = Self {
            command,
            container_id: String::new(),
            netns: var("CNI_NETNS").filter(|n| !n.is_empty()).map(PathBuf::from),
            ifname: String::new(),
            args: parse_args(&var("CNI_ARGS").unwrap_or_default())?,
        };
        if per_attachment {
            let id = var("CNI_CONTAINERID").ok_or_else(|| missing("CNI_CONTAINERID"))?;
            check_container_id(&id)?;
            inv.container_id = id;
            let ifname = var("CNI_IFNAME").ok_or_else(|| missing("CNI_IFNAME"))?;
            cell_net::links::check_link_name(&ifname).map_err(|_| {
                CniError::new(
                    Code::InvalidEnvironment,
                    format!("CNI_IFNAME '{ifname}' is not a valid interface name (1 to 15 bytes, no '/', ':' or spaces)"),
                )
            })?;
            inv.ifname = ifname;
        }
        if matches!(command, Command::Add | Command::Check) && inv.netns.is_none() {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!(
                    "CNI_NETNS is not set: {} needs the container's network namespace",
                    command.as_str()
                ),
            ));
        }
        Ok(inv)
    }
}

/// The spec's rule for container ids: an alphanumeric, then alphanumerics,
/// `_`, `.` or `-`.
fn check_container_id(id: &str) -> Result<()> {
    let mut bytes = id.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_CONTAINERID '{id}' is not a valid container id"),
        ))
    }
}

/// `K=V;K=V` into pairs; an item without `=` is an error naming it.
fn parse_args(text: &str) -> Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for item in text.split(';').filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("CNI_ARGS item '{item}' is not KEY=VALUE"),
            )
        })?;
        args.insert(key.to_string(), value.to_string());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }

    #[test]
    fn add_needs_its_variables() {
        let inv = Invocation::from_vars(vars(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ]))
        .unwrap();
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.args["K8S_POD_NAME"], "web");
        let err = Invocation::from_vars(vars(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap_err();
        assert_eq!(err.code, Code::InvalidEnvironment);
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
    }

    #[test]
    fn del_takes_an_empty_netns() {
        let inv = Invocation::from_vars(vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert_eq!(inv.netns, None);
    }

    #[test]
    fn bad_variables_are_named() {
        for (pairs, named) in [
            (vec![("CNI_COMMAND", "ATTACH")], "CNI_COMMAND"),
            (vec![], "CNI_COMMAND"),
            (
                vec![("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "eth0")],
                "CNI_CONTAINERID",
            ),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "-x"),
                    ("CNI_IFNAME", "eth0"),
                ],
                "CNI_CONTAINERID",
            ),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "x"),
                    ("CNI_IFNAME", "a/b"),
                ],
                "CNI_IFNAME",
            ),
            (
                vec![
                    ("CNI_COMMAND", "DEL"),
                    ("CNI_CONTAINERID", "x"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_ARGS", "novalue"),
                ],
                "CNI_ARGS",
            ),
        ] {
            let err = Invocation::from_vars(vars(&pairs)).unwrap_err();
            assert_eq!(err.code, Code::InvalidEnvironment, "{pairs:?}");
            assert!(err.msg.contains(named), "{pairs:?}: {}", err.msg);
        }
    }

    #[test]
    fn status_version_and_gc_need_only_the_command() {
        for command in ["STATUS", "VERSION", "GC"] {
            Invocation::from_vars(vars(&[("CNI_COMMAND", command)])).unwrap();
        }
    }
}
