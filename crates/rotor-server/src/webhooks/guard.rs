//! Which addresses a webhook may be sent to. Rotor posts to URLs that people
//! type, so by default it refuses every address that reaches inside the
//! network it runs in: loopback, private (RFC 1918, IPv6 unique-local),
//! shared (RFC 6598), link-local (the cloud metadata address 169.254.169.254
//! among them), unspecified, multicast, broadcast and reserved. The check is
//! made on the addresses the sender will actually connect to, after DNS
//! ([`super::sender`]), so a name that resolves to 127.0.0.1 is refused like
//! the literal. Operators open chosen networks with
//! `ROTOR_WEBHOOK_ALLOWED_NETWORKS`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address policy of webhook deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Networks allowed even though they are internal.
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy that opens `allowed` on top of the default refusals.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Parses a comma-separated CIDR list (`ROTOR_WEBHOOK_ALLOWED_NETWORKS`);
    /// a bare address is a /32 or /128.
    pub fn parse(list: &str) -> Result<Self, String> {
        parse_networks(list).map(|allowed| Self { allowed })
    }

    /// `Ok` when a delivery may connect to `ip`; otherwise why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match internal(ip) {
            None => Ok(()),
            Some(kind) => Err(format!(
                "{ip} is a {kind} address; webhooks are not sent there unless \
                 ROTOR_WEBHOOK_ALLOWED_NETWORKS opens it"
            )),
        }
    }
}

/// Parses a comma-separated CIDR list; a bare address is a /32 or /128.
/// (`ROTOR_WEBHOOK_ALLOWED_NETWORKS`, `ROTOR_TRUSTED_PROXIES`.)
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|raw| {
            raw.parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{raw:?} is not a CIDR network (e.g. 10.0.0.0/8)"))
        })
        .collect()
}

/// An IPv4-mapped or -compatible IPv6 address is the IPv4 address it maps.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of internal address `ip` is, if it is one.
fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private (unique-local)")
    } else if (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (deprecated) addresses such as ::127.0.0.1
        internal_v4(v4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &AddressPolicy, ip: &str) -> bool {
        p.check(ip.parse().expect("ip")).is_err()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(&p, ip), "{ip} should be refused");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(!refused(&p, ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn allowed_networks_open_only_themselves() {
        let p = AddressPolicy::parse("127.0.0.0/8, 10.20.0.0/16,::1").expect("parse");
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        assert!(!refused(&p, "10.20.3.4"));
        assert!(!refused(&p, "::1"));
        assert!(refused(&p, "10.21.0.1"));
        assert!(refused(&p, "169.254.169.254"));
        assert!(AddressPolicy::parse("10.0.0.0/33").is_err());
        assert!(AddressPolicy::parse("localhost").is_err());
        assert_eq!(
            AddressPolicy::parse(" ").expect("empty"),
            AddressPolicy::default()
        );
    }
}
