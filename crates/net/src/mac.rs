//! [`MacAddr`]: an Ethernet address, parsed once at the edge so that links
//! and firewall elements never carry a MAC as unchecked text.

use crate::error::NetError;
use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether the address is locally administered and unicast, the kind
    /// cell generates for container interfaces.
    pub fn is_local_unicast(self) -> bool {
        self.0[0] & 0b11 == 0b10
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let invalid = || NetError::InvalidMac { text: s.to_string() };
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<&[u8]> for MacAddr {
    type Error = NetError;

    fn try_from(bytes: &[u8]) -> Result<Self, NetError> {
        <[u8; 6]>::try_from(bytes)
            .map(Self)
            .map_err(|_| NetError::InvalidMac {
                text: format!("{bytes:02x?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0x42, 0xac, 0x11, 0, 2]);
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert!(mac.is_local_unicast());
        assert_eq!("02:42:AC:11:00:02".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert!(err.to_string().contains("invalid MAC"), "{bad}: {err}");
        }
    }
}
