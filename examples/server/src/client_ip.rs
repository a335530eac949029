//! The client's address: the peer's, or, when the peer is a trusted reverse
//! proxy, the nearest address its forwarding header names that is not a
//! trusted proxy itself.
//!
//! Each proxy appends the address it received the request from to the
//! header, so only its right end is written by proxies we trust: a client can
//! put anything in front of it. The address is therefore read from the right,
//! skipping trusted proxies; the first other address is the client's.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use clap::ValueEnum;
use ipnet::IpNet;

use crate::state::AppState;

/// The header trusted proxies record the addresses they forward for in.
/// Only that one is read: a client could send the other with any content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// The client's address as [`resolve`] finds it, for handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<AppState>>::Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        let settings = &state.settings;
        Ok(Self(resolve(
            peer.ip(),
            &parts.headers,
            &settings.trusted_proxies,
            settings.forwarded_header,
        )))
    }
}

/// The client's address for a request from `peer` with `headers`: `peer`
/// unless it is in `trusted`; then the rightmost address of `header` that is
/// not in `trusted` (or, if every one is, the leftmost). A hop that is not an
/// address (`unknown`, an obfuscated name, garbage) ends the walk at the
/// trusted proxy that wrote it.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => header::FORWARDED.as_str(),
    };
    // Repeated headers are one list, in order.
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        match value.to_str() {
            Ok(text) => hops.extend(text.split(',').map(|hop| match header {
                ForwardedHeader::XForwardedFor => parse_node(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            })),
            Err(_) => hops.push(None),
        }
    }
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value))
            .flatten()
    })
}

/// An address with an optional port, optionally quoted, IPv6 optionally in
/// brackets: `192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    node.parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_the_headers() {
        let h = headers("x-forwarded-for", &["203.0.113.1"]);
        let trusted = [net("10.0.0.0/8")];
        let peer = ip("192.0.2.9");
        assert_eq!(
            resolve(peer, &h, &trusted, ForwardedHeader::XForwardedFor),
            peer
        );
        assert_eq!(resolve(peer, &h, &[], ForwardedHeader::XForwardedFor), peer);
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = [net("10.0.0.0/8"), net("192.0.2.7/32")];
        let peer = ip("10.1.1.1");
        let xff = ForwardedHeader::XForwardedFor;
        // Forged leftmost hops are never reached.
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.1, 10.2.2.2"]);
        assert_eq!(resolve(peer, &h, &trusted, xff), ip("203.0.113.1"));
        // Repeated headers form one list; ports and spaces are tolerated.
        let h = headers(
            "x-forwarded-for",
            &["6.6.6.6", "203.0.113.1:5555 ,192.0.2.7"],
        );
        assert_eq!(resolve(peer, &h, &trusted, xff), ip("203.0.113.1"));
        // Every hop trusted: the leftmost.
        let h = headers("x-forwarded-for", &["10.3.3.3, 10.2.2.2"]);
        assert_eq!(resolve(peer, &h, &trusted, xff), ip("10.3.3.3"));
        // A hop that is no address stops at the proxy that wrote it.
        let h = headers("x-forwarded-for", &["203.0.113.1, garbage, 10.2.2.2"]);
        assert_eq!(resolve(peer, &h, &trusted, xff), ip("10.2.2.2"));
        // No header: the proxy itself.
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted, xff), peer);
        // IPv4-mapped peers match IPv4 blocks.
        let h = headers("x-forwarded-for", &["203.0.113.1"]);
        assert_eq!(
            resolve(ip("::ffff:10.1.1.1"), &h, &trusted, xff),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn forwarded_is_read_only_when_chosen() {
        let trusted = [net("10.0.0.0/8")];
        let peer = ip("10.1.1.1");
        let h = headers(
            "forwarded",
            &[r#"for=6.6.6.6, For="[2001:db8::1]:4711";proto=https, for=10.2.2.2;by=10.1.1.1"#],
        );
        assert_eq!(
            resolve(peer, &h, &trusted, ForwardedHeader::Forwarded),
            ip("2001:db8::1")
        );
        // The other header is ignored.
        assert_eq!(
            resolve(peer, &h, &trusted, ForwardedHeader::XForwardedFor),
            peer
        );
        let h = headers("forwarded", &["for=unknown, for=10.2.2.2"]);
        assert_eq!(
            resolve(peer, &h, &trusted, ForwardedHeader::Forwarded),
            ip("10.2.2.2")
        );
        let h = headers("forwarded", &["for=192.0.2.60:8080;proto=http"]);
        assert_eq!(
            resolve(peer, &h, &trusted, ForwardedHeader::Forwarded),
            ip("192.0.2.60")
        );
    }
}
