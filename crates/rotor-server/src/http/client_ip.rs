//! Who the client is. Behind a load balancer the TCP peer is the balancer;
//! the client's address is in `X-Forwarded-For` or `Forwarded` (RFC 7239),
//! which any client can also write. So those headers are read only when the
//! peer is a proxy the operator trusts (`--trusted-proxies`), and then from
//! the right: each trusted proxy appends the address it saw, so the first
//! address from the right that is not a trusted proxy is the client.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::webhooks::guard::{canonical, parse_networks};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated CIDR list; a bare address is a /32 or /128.
    pub fn parse(list: &str) -> Result<Self, String> {
        parse_networks(list).map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request: the socket peer, or, when the
    /// peer is trusted, the nearest untrusted address its forwarding
    /// headers name (`Forwarded` first, then `X-Forwarded-For`).
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops = forwarded_hops(parts);
        // Right to left: the last hop was added by the proxy that talked to us.
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => continue,
                Some(ip) => return Some(*ip),
                // An obfuscated or unparsable hop: stop believing the chain.
                None => return Some(peer),
            }
        }
        // Every hop is a trusted proxy (or there were none): the leftmost
        // one is the closest we have to the client.
        hops.first().copied().flatten().or(Some(peer))
    }
}

/// The addresses of the forwarding chain, client first.
fn forwarded_hops(parts: &Parts) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut p, ()) = b.body(()).unwrap().into_parts();
        p.extensions.insert(ConnectInfo(
            format!("{peer}:5000").parse::<SocketAddr>().unwrap(),
        ));
        p
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let p = parts("203.0.113.9", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(t.client_ip(&p), ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(&parts("10.1.1.1", &[("x-forwarded-for", "1.2.3.4")])),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_from_the_right() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // A client wrote a fake first hop; the proxies appended the real ones.
        let p = parts(
            "10.0.0.2",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")],
        );
        assert_eq!(t.client_ip(&p), ip("198.51.100.7"));
        let p = parts(
            "10.0.0.2",
            &[(
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
            )],
        );
        assert_eq!(t.client_ip(&p), ip("2001:db8::7"));
        let p = parts("10.0.0.2", &[("forwarded", "for=_hidden")]);
        assert_eq!(t.client_ip(&p), ip("10.0.0.2"));
        let p = parts("10.0.0.2", &[]);
        assert_eq!(t.client_ip(&p), ip("10.0.0.2"));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8,nope").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
