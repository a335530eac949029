//! Authenticating the WebSocket handshake.
//!
//! The token may come in the `Authorization: Bearer <token>` header, in the
//! `access_token` query parameter, or, for browsers (which cannot set
//! headers on a WebSocket), as a `kith.token.<token>` entry of
//! `Sec-WebSocket-Protocol` next to `kith.v1`. Tokens are never logged.

use async_trait::async_trait;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::HeaderMap;
use kith_core::{Kith, SessionId, UserId};

use crate::protocol::TOKEN_PROTOCOL_PREFIX;

/// Who a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: UserId,
    /// The session the token opens, if the authenticator has sessions; a
    /// revoked session closes the connections opened with it.
    pub session: Option<SessionId>,
}

/// Turns a bearer token into an [`Identity`]. Applications with their own
/// identity system implement it; [`KithSessions`] uses Kith's session tokens.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The identity the token proves, or `None` if it proves nothing.
    async fn authenticate(&self, token: &str) -> Option<Identity>;
}

/// Authenticates with the session tokens of [`kith_core::Accounts::login`].
#[derive(Clone)]
pub struct KithSessions(pub Kith);

#[async_trait]
impl Authenticator for KithSessions {
    async fn authenticate(&self, token: &str) -> Option<Identity> {
        let session = self.0.accounts().authenticate(token).await.ok()?;
        Some(Identity {
            user_id: session.user_id,
            session: Some(session.id),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, trimmed (possibly
/// empty); `None` without the header or with another scheme. The scheme is
/// case-insensitive (RFC 7235): `bearer` and `BEARER` are `Bearer` too.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Finds the token in a handshake request: the `Authorization` header, the
/// `access_token` query parameter, or a `kith.token.` subprotocol, in that order.
pub fn token_from_request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = bearer_token(headers);
    let from_query = || {
        query?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "access_token")
            .map(|(_, v)| v)
    };
    let from_protocol = || {
        headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
    };
    bearer
        .or_else(from_query)
        .or_else(from_protocol)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_found_in_header_query_or_subprotocol() {
        let mut h = HeaderMap::new();
        assert_eq!(token_from_request(&h, None), None);
        assert_eq!(
            token_from_request(&h, Some("a=1&access_token=q1")),
            Some("q1")
        );
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("kith.v1, kith.token.p1"),
        );
        assert_eq!(token_from_request(&h, None), Some("p1"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer h1"));
        assert_eq!(token_from_request(&h, Some("access_token=q1")), Some("h1"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer h2"));
        assert_eq!(token_from_request(&h, Some("access_token=q1")), Some("h2"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Bearer", Some("")),
            ("Bearer ", Some("")),
            ("Basic abc", None),
            ("Bearerabc", None),
        ] {
            h.insert(AUTHORIZATION, HeaderValue::from_static(header));
            assert_eq!(bearer_token(&h), token, "{header:?}");
        }
    }
}
