//! IPv4 CIDR blocks: parsing, membership and address allocation.
//!
//! A tiny type of our own rather than a dependency: the harness only needs
//! "parse `198.18.3.0/24`", "is this address inside", "do two blocks overlap" and
//! "the n-th address of the block".

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a CIDR string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// Not of the form `a.b.c.d/len`.
    #[error("CIDR {0:?}: expected the form a.b.c.d/len, e.g. 198.18.0.0/16")]
    Syntax(String),
    /// Prefix length above 32 or too long to hold pods (the harness needs at
    /// least a host address, one pod, network and broadcast addresses).
    #[error("CIDR {0:?}: prefix length must be between 1 and 30")]
    PrefixLength(String),
    /// Host bits set, e.g. `198.18.0.1/16`.
    #[error("CIDR {0:?}: address has host bits set (did you mean {1}?)")]
    HostBits(String, Cidr),
}

/// An IPv4 network such as `198.18.0.0/16` (host bits always zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// Builds a block from its network address and prefix length.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Cidr, CidrError> {
        let text = format!("{network}/{prefix}");
        if prefix == 0 || prefix > 30 {
            return Err(CidrError::PrefixLength(text));
        }
        let masked = Ipv4Addr::from(u32::from(network) & mask(prefix));
        if masked != network {
            return Err(CidrError::HostBits(
                text,
                Cidr {
                    network: masked,
                    prefix,
                },
            ));
        }
        Ok(Cidr { network, prefix })
    }

    /// The network address (first address of the block).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses in the block, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The `n`-th address of the block (0 = the network address), if inside it.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + n as u32))
    }

    /// The first usable address: the bridge's host address in a pod CIDR.
    pub fn first_host(&self) -> Ipv4Addr {
        self.nth(1)
            .expect("prefix <= 30 leaves at least 4 addresses")
    }

    /// The last usable address (just below broadcast).
    pub fn last_host(&self) -> Ipv4Addr {
        self.nth(self.size() - 2)
            .expect("prefix <= 30 leaves at least 4 addresses")
    }

    /// Whether `addr` lies inside the block.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the two blocks share at least one address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Syntax(s.to_string()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        let len: u8 = len.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        Cidr::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_allocates() {
        let c: Cidr = "198.18.7.0/24".parse().unwrap();
        assert_eq!(c.first_host(), Ipv4Addr::new(198, 18, 7, 1));
        assert_eq!(c.last_host(), Ipv4Addr::new(198, 18, 7, 254));
        assert_eq!(c.nth(256), None);
        assert!(c.contains(Ipv4Addr::new(198, 18, 7, 200)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 8, 1)));
        assert_eq!(c.to_string(), "198.18.7.0/24");
    }

    #[test]
    fn overlap_is_symmetric() {
        let big: Cidr = "198.18.0.0/16".parse().unwrap();
        let small: Cidr = "198.18.9.0/24".parse().unwrap();
        let other: Cidr = "198.19.9.0/24".parse().unwrap();
        assert!(big.overlaps(&small) && small.overlaps(&big));
        assert!(!big.overlaps(&other) && !other.overlaps(&small));
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        assert!(matches!(
            "198.18.0.0".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "198.18.0.0/31".parse::<Cidr>(),
            Err(CidrError::PrefixLength(_))
        ));
        let err = "198.18.0.1/16".parse::<Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR \"198.18.0.1/16\": address has host bits set (did you mean 198.18.0.0/16?)"
        );
    }
}
