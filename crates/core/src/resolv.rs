//! `--dns` as users type it, and the `resolv.conf` each mode writes.
//!
//! [`DnsOption`] is the flag's value before the client has read a custom
//! file; [`DnsOption::into_dns`] turns it into the model's
//! [`Dns`](crate::model::Dns), which is what the API carries and the store
//! keeps. The renderers here are pure, so the engine only gathers their
//! inputs (the host's file, a DNS container's address) at each start.

use crate::error::{CoreError, Result, quoted};
use crate::model::Dns;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// The address celld's resolver answers at inside a container's network
/// namespace (Docker's choice, so images and habits carry over).
pub const CELL_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The largest `resolv.conf` a custom mode may carry (64 KiB): the C
/// library reads far less, and the file travels in every create request.
pub const CUSTOM_RESOLV_CONF_MAX: usize = 64 * 1024;

/// The value of `--dns` as typed: `inherit`, `off`, `custom:FILE`,
/// `container:NAME` or `cell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsOption {
    /// `inherit`.
    Inherit,
    /// `off`.
    Off,
    /// `custom:FILE`: the path, still to be read by the client.
    CustomFile(String),
    /// `container:NAME`: the DNS container, by name, id or id prefix.
    Container(String),
    /// `cell`.
    Cell,
}

impl FromStr for DnsOption {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || {
            CoreError::invalid(format!(
                "unknown dns mode {} (expected inherit, off, custom:FILE, container:NAME or cell)",
                quoted(s)
            ))
        };
        match s {
            "inherit" => return Ok(Self::Inherit),
            "off" => return Ok(Self::Off),
            "cell" => return Ok(Self::Cell),
            _ => {}
        }
        let (mode, value) = s.split_once(':').ok_or_else(unknown)?;
        match mode {
            "custom" if value.is_empty() => Err(CoreError::invalid(format!(
                "invalid dns mode {}: custom needs a file, as custom:FILE",
                quoted(s)
            ))),
            "custom" => Ok(Self::CustomFile(value.to_string())),
            "container" if value.is_empty() => Err(CoreError::invalid(format!(
                "invalid dns mode {}: container needs a container, as container:NAME",
                quoted(s)
            ))),
            "container" => Ok(Self::Container(value.to_string())),
            _ => Err(unknown()),
        }
    }
}

impl DnsOption {
    /// The model's mode, reading a custom file through `read_file` (the
    /// client's file system: celld may run elsewhere and never reads it).
    /// `read_file` returns the reason it failed; the error names the file.
    pub fn into_dns(
        self,
        read_file: impl FnOnce(&str) -> std::result::Result<String, String>,
    ) -> Result<Dns> {
        Ok(match self {
            Self::Inherit => Dns::Inherit,
            Self::Off => Dns::Off,
            Self::Cell => Dns::Cell,
            Self::Container(container) => Dns::Container { container },
            Self::CustomFile(path) => {
                let resolv_conf = read_file(&path).map_err(|reason| {
                    CoreError::invalid(format!(
                        "cannot read the dns file {} (--dns custom:FILE): {reason}",
                        quoted(&path)
                    ))
                })?;
                validate_custom_resolv_conf(&resolv_conf).map_err(|e| {
                    CoreError::invalid(format!("invalid dns file {}: {}", quoted(&path), e.message))
                })?;
                Dns::Custom { resolv_conf }
            }
        })
    }
}

/// Checks the content of a custom `resolv.conf`: at most
/// [`CUSTOM_RESOLV_CONF_MAX`] bytes and no NUL (a text file; the C library
/// would stop reading there).
pub fn validate_custom_resolv_conf(content: &str) -> Result<()> {
    if content.len() > CUSTOM_RESOLV_CONF_MAX {
        return Err(CoreError::invalid(format!(
            "a custom resolv.conf holds at most {CUSTOM_RESOLV_CONF_MAX} bytes, not {}",
            content.len()
        )));
    }
    if content.contains('\0') {
        return Err(CoreError::invalid("a custom resolv.conf may not hold a NUL byte"));
    }
    Ok(())
}

/// The `resolv.conf` of mode `cell`: celld's resolver, with the host's
/// search domains kept (as Docker's embedded resolver does) so short names
/// the host resolves still resolve. `ndots:0` sends a name with a dot
/// (`web.mynet`) to the resolver as typed first, without trying the
/// search domains before it.
pub fn cell_resolv_conf(host_resolv_conf: &str) -> String {
    let mut out = format!("nameserver {CELL_RESOLVER}\n");
    for line in host_resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("search" | "domain")) && words.next().is_some() {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out.push_str("options ndots:0\n");
    out
}

/// The `resolv.conf` of mode `container`: the DNS container's address.
pub fn nameserver_resolv_conf(address: IpAddr) -> String {
    format!("nameserver {address}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_file(_: &str) -> std::result::Result<String, String> {
        Err("No such file or directory (os error 2)".into())
    }

    #[test]
    fn modes_parse() {
        assert_eq!("inherit".parse::<DnsOption>().unwrap(), DnsOption::Inherit);
        assert_eq!("off".parse::<DnsOption>().unwrap(), DnsOption::Off);
        assert_eq!("cell".parse::<DnsOption>().unwrap(), DnsOption::Cell);
        assert_eq!(
            "custom:/etc/my resolv".parse::<DnsOption>().unwrap(),
            DnsOption::CustomFile("/etc/my resolv".into())
        );
        assert_eq!(
            "container:dns:1".parse::<DnsOption>().unwrap(),
            DnsOption::Container("dns:1".into())
        );
    }

    #[test]
    fn bad_modes_name_the_value() {
        for bad in ["", "Cell", "bogus", "pot:x", "inherit:x", "custom", "container"] {
            let err = bad.parse::<DnsOption>().unwrap_err();
            assert!(err.message.contains(&quoted(bad)), "{bad}: {}", err.message);
            assert!(err.message.contains("unknown dns mode"), "{}", err.message);
        }
        for bad in ["custom:", "container:"] {
            let err = bad.parse::<DnsOption>().unwrap_err();
            assert!(err.message.contains(&quoted(bad)), "{}", err.message);
        }
    }

    #[test]
    fn custom_file_is_read_by_the_caller() {
        let dns = DnsOption::CustomFile("/r".into())
            .into_dns(|path| Ok(format!("# from {path}\nnameserver 192.0.2.1\n")))
            .unwrap();
        assert_eq!(
            dns,
            Dns::Custom {
                resolv_conf: "# from /r\nnameserver 192.0.2.1\n".into()
            }
        );
        let err = DnsOption::CustomFile("/missing".into())
            .into_dns(no_file)
            .unwrap_err();
        assert_eq!(
            err.message,
            "cannot read the dns file '/missing' (--dns custom:FILE): No such file or directory (os error 2)"
        );
        let err = DnsOption::CustomFile("/nul".into())
            .into_dns(|_| Ok("a\0b".into()))
            .unwrap_err();
        assert!(
            err.message.contains("'/nul'") && err.message.contains("NUL"),
            "{}",
            err.message
        );
        let big = "#".repeat(CUSTOM_RESOLV_CONF_MAX + 1);
        assert!(
            DnsOption::CustomFile("/big".into())
                .into_dns(|_| Ok(big))
                .is_err()
        );
    }

    #[test]
    fn cell_mode_keeps_only_the_search_domains() {
        let host = "# generated\nnameserver 10.0.0.1\nnameserver ::1\nsearch example.org lan\n  domain corp\noptions edns0\nsearch\n";
        assert_eq!(
            cell_resolv_conf(host),
            "nameserver 127.0.0.11\nsearch example.org lan\ndomain corp\noptions ndots:0\n"
        );
        assert_eq!(cell_resolv_conf(""), "nameserver 127.0.0.11\noptions ndots:0\n");
    }

    #[test]
    fn container_mode_names_one_server() {
        assert_eq!(
            nameserver_resolv_conf("10.1.0.2".parse().unwrap()),
            "nameserver 10.1.0.2\n"
        );
        assert_eq!(
            nameserver_resolv_conf("fd00::2".parse().unwrap()),
            "nameserver fd00::2\n"
        );
    }

    #[test]
    fn dns_json_is_tagged_by_mode() {
        let cases = [
            (Dns::Cell, serde_json::json!({"mode": "cell"})),
            (Dns::Off, serde_json::json!({"mode": "off"})),
            (
                Dns::Custom {
                    resolv_conf: "nameserver 192.0.2.1\n".into(),
                },
                serde_json::json!({"mode": "custom", "resolv_conf": "nameserver 192.0.2.1\n"}),
            ),
            (
                Dns::Container {
                    container: "dns".into(),
                },
                serde_json::json!({"mode": "container", "container": "dns"}),
            ),
        ];
        for (dns, json) in cases {
            assert_eq!(serde_json::to_value(&dns).unwrap(), json);
            assert_eq!(serde_json::from_value::<Dns>(json).unwrap(), dns);
        }
        assert!(serde_json::from_value::<Dns>(serde_json::json!({"mode": "pot"})).is_err());
        assert!(
            serde_json::from_value::<Dns>(serde_json::json!({"mode": "custom", "resolv_conf": "", "x": 1}))
                .is_err()
        );
    }
}
