//! [`Host`]: the node's kernel as the plugin uses it: rtnetlink, sysctls,
//! and [`CniFirewall`], cell's fixed ruleset in tables of the plugin's own
//! ([`TABLE`]: `inet cell_cni` and `bridge cell_cni`), so the plugin and a
//! `celld` on the same node never touch each other's rules.
//!
//! [`change_elements`] is the plugin's one firewall transaction per call:
//! the elements an operation removes and adds, in one batch. The fixed
//! rules are written only when that batch fails (the first ADD on a node,
//! or after a reboot emptied the kernel's tables): the retry puts the
//! whole ruleset and the elements in one transaction.

use crate::error::{CniError, Result};
use cell_net::ruleset::{self, Element};
use cell_net::{Firewall, HostKernel, NetError, NetlinkLinks, Nft, ProcSysctl};
use serde_json::Value;

/// The name of the plugin's two tables.
pub const TABLE: &str = "cell_cni";

/// cell's ruleset, retargeted onto [`TABLE`].
#[derive(Debug)]
pub struct CniFirewall {
    nft: Nft,
}

impl CniFirewall {
    /// A libnftables context in the caller's network namespace.
    pub fn new() -> cell_net::Result<Self> {
        Ok(Self { nft: Nft::new()? })
    }

    /// One of the plugin's tables as nft's JSON; `None` if it does not
    /// exist.
    pub fn list(&self, family: &str) -> cell_net::Result<Option<Value>> {
        match self.nft.list_table(family, TABLE) {
            Ok(listing) => Ok(Some(listing)),
            Err(NetError::NftList { message, .. }) if message.contains("No such file or directory") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every element of every set and map of both tables, as `(family,
    /// set, value)`; a map's element is `[key, data]`.
    pub fn elements(&self) -> cell_net::Result<Vec<(String, String, Value)>> {
        let mut found = Vec::new();
        for family in [ruleset::FAMILY_INET, ruleset::FAMILY_BRIDGE] {
            let Some(listing) = self.list(family)? else {
                continue;
            };
            for object in listing["nftables"].as_array().into_iter().flatten() {
                let Some(set) = object.get("set").or_else(|| object.get("map")) else {
                    continue;
                };
                let name = set["name"].as_str().unwrap_or_default();
                for elem in set["elem"].as_array().into_iter().flatten() {
                    // An element with flags or a counter comes wrapped.
                    let value = elem.get("elem").and_then(|e| e.get("val")).unwrap_or(elem);
                    found.push((family.to_string(), name.to_string(), value.clone()));
                }
            }
        }
        Ok(found)
    }
}

impl Firewall for CniFirewall {
    fn apply(&self, batch: &Value) -> cell_net::Result<()> {
        self.nft.apply(&ruleset::retarget(batch, TABLE))
    }
}

/// The node's kernel, opened once per call.
#[derive(Debug)]
pub struct Host {
    /// Links, addresses and routes of the node.
    pub links: NetlinkLinks,
    /// The plugin's tables.
    pub firewall: CniFirewall,
    /// Kernel parameters of the node.
    pub sysctl: ProcSysctl,
}

impl Host {
    /// Opens rtnetlink and libnftables in the caller's namespace.
    pub fn open() -> Result<Self> {
        Ok(Self {
            links: NetlinkLinks::new().map_err(|e| CniError::kernel("failed to open rtnetlink", &e))?,
            firewall: CniFirewall::new().map_err(|e| CniError::kernel("failed to open nftables", &e))?,
            sysctl: ProcSysctl,
        })
    }

    /// The kernel as the `cell-net` drivers take it.
    pub fn kernel(&self) -> HostKernel<'_> {
        HostKernel {
            links: &self.links,
            firewall: &self.firewall,
            sysctl: &self.sysctl,
        }
    }
}

/// Removes `delete` and adds `add` in one transaction. If the batch fails
/// with elements to add, the tables are (re)written with the same batch
/// behind them. A batch that only removes succeeds when the tables are
/// gone, as then so are the elements.
pub fn change_elements(
    firewall: &dyn TablesFirewall,
    add: &[Element],
    delete: &[Element],
) -> cell_net::Result<()> {
    let mut cmds = ruleset::delete_elements(delete);
    cmds.extend(ruleset::add_elements(add));
    if cmds.is_empty() {
        return Ok(());
    }
    let Err(first) = firewall.apply(&ruleset::batch(cmds.clone())) else {
        return Ok(());
    };
    if add.is_empty() {
        return match firewall.tables_exist() {
            Ok(false) => Ok(()),
            _ => Err(first),
        };
    }
    tracing::debug!(error = %first, "element batch failed; writing the ruleset with it");
    let mut with_base = ruleset::base_commands();
    with_base.extend(cmds);
    firewall.apply(&ruleset::batch(with_base))
}

/// A [`Firewall`] that can say whether its tables exist.
pub trait TablesFirewall: Firewall {
    /// Whether both tables exist.
    fn tables_exist(&self) -> cell_net::Result<bool>;
}

impl TablesFirewall for CniFirewall {
    fn tables_exist(&self) -> cell_net::Result<bool> {
        Ok(self.list(ruleset::FAMILY_INET)?.is_some() && self.list(ruleset::FAMILY_BRIDGE)?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cell_net::FakeFirewall;
    use serde_json::json;

    struct Fake {
        inner: FakeFirewall,
        exist: bool,
    }

    impl Firewall for Fake {
        fn apply(&self, batch: &Value) -> cell_net::Result<()> {
            self.inner.apply(&ruleset::retarget(batch, TABLE))
        }
    }

    impl TablesFirewall for Fake {
        fn tables_exist(&self) -> cell_net::Result<bool> {
            Ok(self.exist)
        }
    }

    fn elements() -> Vec<Element> {
        let net = crate::config::NetConf::parse(
            &json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.1.0.0/24"}),
        )
        .unwrap()
        .network("eth0", Some("em0".into()));
        ruleset::network_elements(&net)
    }

    #[test]
    fn one_transaction_on_the_plugins_tables_only() {
        let fw = Fake {
            inner: FakeFirewall::new(),
            exist: true,
        };
        change_elements(&fw, &elements(), &[]).unwrap();
        let batches = fw.inner.batches();
        assert_eq!(batches.len(), 1);
        let text = batches[0].to_string();
        assert!(text.contains("\"table\":\"cell_cni\""), "{text}");
        assert!(!text.contains("\"table\":\"cell\""), "{text}");
    }

    #[test]
    fn a_failed_batch_is_retried_with_the_ruleset() {
        let fw = Fake {
            inner: FakeFirewall::new(),
            exist: false,
        };
        fw.inner.fail_call(1);
        change_elements(&fw, &elements(), &[]).unwrap();
        let batches = fw.inner.batches();
        assert_eq!(batches.len(), 1);
        let cmds = batches[0]["nftables"].as_array().unwrap();
        assert_eq!(
            cmds[0],
            json!({"add": {"table": {"family": "inet", "name": "cell_cni"}}})
        );
        assert!(cmds.len() > elements().len());
    }

    #[test]
    fn removing_from_missing_tables_is_done() {
        let fw = Fake {
            inner: FakeFirewall::new(),
            exist: false,
        };
        fw.inner.fail_call(1);
        change_elements(&fw, &[], &elements()).unwrap();
        let fw = Fake {
            inner: FakeFirewall::new(),
            exist: true,
        };
        fw.inner.fail_call(1);
        assert!(change_elements(&fw, &[], &elements()).is_err());
    }
}
