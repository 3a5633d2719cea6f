//! [`AddResult`]: what an ADD made (interfaces, addresses, routes), read
//! from a previous result of any version and rendered in the version the
//! configuration asks for (SPEC.md, "ADD Success").
//!
//! The versions differ little: up to 0.4.0 every address carries a
//! `version` ("4" or "6"); 1.0.0 dropped it; 1.1.0 added optional keys
//! (an interface's `mtu`, a route's `priority`...) that cell does not set.

use crate::config::version_at_least;
use crate::error::{CniError, Code, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::IpAddr;

/// An interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path of an interface inside the container; empty on the
    /// host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The subnet's gateway, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index in `interfaces` of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; `None` for an on-link destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The result of an ADD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    /// Interfaces made, on the host and in the container.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses given.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes added in the container.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings, passed through from a previous plugin.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dns: Value,
}

impl AddResult {
    /// Reads a previous result (`prevResult`) of any supported version.
    pub fn from_value(value: &Value) -> Result<Self> {
        serde_json::from_value(value.clone())
            .map_err(|e| CniError::caused(Code::Decode, format!("failed to decode prevResult: {e}"), &e))
    }

    /// Appends `ours` to a previous plugin's result: its interface indexes
    /// move past the previous interfaces.
    pub fn merge(mut self, ours: AddResult) -> Self {
        let offset = self.interfaces.len();
        self.interfaces.extend(ours.interfaces);
        self.ips.extend(ours.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + offset);
            ip
        }));
        self.routes.extend(ours.routes);
        if self.dns.is_null() {
            self.dns = ours.dns;
        }
        self
    }

    /// The result as the JSON of CNI version `cni_version`.
    pub fn render(&self, cni_version: &str) -> Value {
        let mut body = serde_json::to_value(self).expect("a result serialises");
        body["cniVersion"] = json!(cni_version);
        if !version_at_least(cni_version, 1, 0) {
            for ip in body["ips"].as_array_mut().into_iter().flatten() {
                let family = if ip["address"].as_str().is_some_and(|a| a.contains(':')) {
                    "6"
                } else {
                    "4"
                };
                ip["version"] = json!(family);
            }
        }
        if body.get("dns").is_none() {
            body["dns"] = json!({});
        }
        body
    }

    /// The index of the interface named `name` inside `sandbox`.
    pub fn sandbox_interface(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && !i.sandbox.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> AddResult {
        AddResult {
            interfaces: vec![
                Interface {
                    name: "cellcni0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    sandbox: String::new(),
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:aa:00:00:00:02".into(),
                    sandbox: "/run/netns/p1".into(),
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.88.0.2/16".parse().unwrap(),
                    gateway: Some("10.88.0.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00:88::2/64".parse().unwrap(),
                    gateway: Some("fd00:88::1".parse().unwrap()),
                    interface: Some(1),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.88.0.1".parse().unwrap()),
            }],
            dns: Value::Null,
        }
    }

    #[test]
    fn renders_the_three_versions() {
        let r = result();
        let v11 = r.render("1.1.0");
        assert_eq!(
            v11,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "cellcni0", "mac": "02:00:00:00:00:01"},
                    {"name": "eth0", "mac": "02:aa:00:00:00:02", "sandbox": "/run/netns/p1"}
                ],
                "ips": [
                    {"address": "10.88.0.2/16", "gateway": "10.88.0.1", "interface": 1},
                    {"address": "fd00:88::2/64", "gateway": "fd00:88::1", "interface": 1}
                ],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}],
                "dns": {}
            })
        );
        let mut v10 = v11.clone();
        v10["cniVersion"] = json!("1.0.0");
        assert_eq!(r.render("1.0.0"), v10);
        let v04 = r.render("0.4.0");
        assert_eq!(v04["cniVersion"], "0.4.0");
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["ips"][1]["version"], "6");
        assert!(v11["ips"][0].get("version").is_none());
    }

    #[test]
    fn reads_back_what_it_renders_in_every_version() {
        for version in ["0.4.0", "1.0.0", "1.1.0"] {
            let back = AddResult::from_value(&result().render(version)).unwrap();
            assert_eq!(back.interfaces, result().interfaces, "{version}");
            assert_eq!(back.ips, result().ips, "{version}");
            assert_eq!(back.sandbox_interface("eth0"), Some(1));
            assert_eq!(back.sandbox_interface("cellcni0"), None);
        }
    }

    #[test]
    fn merging_moves_our_interface_indexes() {
        let previous = AddResult {
            interfaces: vec![Interface {
                name: "lo0".into(),
                mac: String::new(),
                sandbox: String::new(),
            }],
            dns: json!({"nameservers": ["10.0.0.10"]}),
            ..AddResult::default()
        };
        let merged = previous.merge(result());
        assert_eq!(merged.interfaces.len(), 3);
        assert_eq!(merged.ips[0].interface, Some(2));
        assert_eq!(merged.dns["nameservers"][0], "10.0.0.10");
    }
}
