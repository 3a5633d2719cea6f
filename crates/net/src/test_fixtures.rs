//! The network the unit tests of the crate share.

use cell_core::model::{Network, NetworkType};

/// A dual-stack network of `net_type` with NAT out of `eth0`; only a bridge
/// has gateways (the host holds them on the bridge).
pub fn network(net_type: NetworkType) -> Network {
    let bridge = net_type == NetworkType::Bridge;
    Network {
        id: "0123456789ab".into(),
        name: "web".into(),
        net_type,
        interface: "cell0".into(),
        subnet: Some("10.1.0.0/24".parse().unwrap()),
        subnet6: Some("fd00:1::/64".parse().unwrap()),
        gateway: bridge.then(|| "10.1.0.1".parse().unwrap()),
        gateway6: bridge.then(|| "fd00:1::1".parse().unwrap()),
        nat: Some("eth0".into()),
        icc: true,
        internal: false,
        antispoof: true,
    }
}
