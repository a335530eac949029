//! The wire protocol `kith.v1`: JSON text frames tagged by `type`.
//!
//! `docs/PROTOCOL.md` is the specification with an example of every frame;
//! this module is its implementation. Server frames that carry a core
//! [`Event`](kith_core::Event) are that event's own serialisation (its `type`
//! is the event's name, e.g. `message_created`); the frames below are the
//! transport's own.

use std::collections::BTreeMap;

use kith_core::{ConversationId, MessageId, ReactionKind, UnreadEntry};
use serde::{Deserialize, Serialize};

/// The subprotocol name clients ask for in `Sec-WebSocket-Protocol`.
pub const PROTOCOL: &str = "kith.v1";
/// The prefix of a token carried as a subprotocol (`kith.token.<token>`),
/// for browsers, which cannot set headers on a WebSocket.
pub const TOKEN_PROTOCOL_PREFIX: &str = "kith.token.";

/// Close codes the server uses, and what a client should do on each.
pub mod close {
    /// Normal closure (the client closed, or its account was deleted).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect with backoff and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not valid UTF-8: fix the client, then reconnect.
    pub const INVALID_DATA: u16 = 1007;
    /// Sustained abuse (too many frames that break the protocol): do not
    /// reconnect at once.
    pub const POLICY: u16 = 1008;
    /// A frame above the hard size limit: fix the client, then reconnect.
    pub const TOO_BIG: u16 = 1009;
    /// The session was revoked (logout, password change): log in again.
    pub const SESSION_REVOKED: u16 = 4001;
    /// Nothing was received within the idle timeout: reconnect and resume.
    pub const IDLE_TIMEOUT: u16 = 4002;
    /// The client did not read fast enough and its queue filled up:
    /// reconnect and resume; nothing is lost.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The server may have missed live events from the other server nodes
    /// (its link to them dropped): reconnect and resume; nothing stored is
    /// lost.
    pub const RESUME: u16 = 4009;
}

/// A frame from the client. Every client frame gets exactly one answer:
/// `ack` or `error` for `send`, `pong` for `ping`, `resume_complete` or
/// `error` for `resume`, and `done` or `error` for the others. Each answer
/// echoes the frame's `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Sends a message; answered by `ack` once it is committed.
    Send {
        /// Where.
        conversation_id: ConversationId,
        /// The idempotency key; the `ack` or `error` echoes it.
        client_id: String,
        /// The text.
        body: String,
        /// The message replied to.
        #[serde(default)]
        reply_to: Option<MessageId>,
    },
    /// Edits one's message.
    Edit {
        /// Where.
        conversation_id: ConversationId,
        /// Which message.
        message_id: MessageId,
        /// The new text.
        body: String,
        /// Echoed in the answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Deletes one's message.
    Delete {
        /// Where.
        conversation_id: ConversationId,
        /// Which message.
        message_id: MessageId,
        /// Echoed in the answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Sets (`kind`) or removes (`null`) one's reaction to a message.
    React {
        /// Where.
        conversation_id: ConversationId,
        /// Which message.
        message_id: MessageId,
        /// The reaction, or `null` to remove it.
        kind: Option<ReactionKind>,
        /// Echoed in the answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The user is typing in a conversation.
    Typing {
        /// Where.
        conversation_id: ConversationId,
        /// Echoed in the answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Marks a conversation read up to `seq`.
    Read {
        /// Where.
        conversation_id: ConversationId,
        /// The newest message read.
        seq: u64,
        /// Echoed in the answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The last version the client has seen of each conversation; the server
    /// replays everything after it. Only valid as the first frame.
    Resume {
        /// Conversation id to last seen version.
        conversations: BTreeMap<ConversationId, u64>,
    },
    /// Application-level keepalive; answered by `pong`.
    Ping {
        /// Echoed in the `pong`.
        #[serde(default)]
        client_id: Option<String>,
    },
}

impl ClientFrame {
    /// The correlation id the client attached, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientFrame::Send { client_id, .. } => Some(client_id),
            ClientFrame::Edit { client_id, .. }
            | ClientFrame::Delete { client_id, .. }
            | ClientFrame::React { client_id, .. }
            | ClientFrame::Read { client_id, .. }
            | ClientFrame::Typing { client_id, .. }
            | ClientFrame::Ping { client_id } => client_id.as_deref(),
            ClientFrame::Resume { .. } => None,
        }
    }
}

/// A frame the transport itself sends (core events are sent as their own
/// serialisation).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// A `send` was committed: the message is durable and has its `seq`.
    Ack {
        /// The `client_id` of the `send`.
        client_id: &'a str,
        /// The conversation.
        conversation_id: ConversationId,
        /// The stored message's id.
        message_id: MessageId,
        /// Its `seq`.
        seq: u64,
        /// Its `version`.
        version: u64,
    },
    /// A client frame was refused; nothing changed.
    Error {
        /// A stable code: Kith's error codes plus `invalid_frame`,
        /// `too_large` and `resume_not_first`.
        code: &'a str,
        /// A human-readable explanation ([`Error::public_message`]
        /// for Kith's errors: no internal details).
        ///
        /// [`Error::public_message`]: kith_core::Error::public_message
        message: &'a str,
        /// The `client_id` of the refused frame, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        /// For `rate_limited`: milliseconds until a retry can succeed.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The user's unread counts: after connecting (and resuming) and after
    /// each `read` on this connection.
    Unread {
        /// Sum over all conversations.
        total: u64,
        /// Each conversation with unread messages.
        conversations: &'a [UnreadEntry],
    },
    /// The answer to `resume`: the replay is over; live frames follow.
    /// Gives the version each resumed conversation is now at for this
    /// client, and why each of the others could not be resumed.
    ResumeComplete {
        /// Conversation id to version.
        conversations: BTreeMap<ConversationId, u64>,
        /// Conversation id to the refusal (for example `not_found` for a
        /// conversation the user left).
        failed: BTreeMap<ConversationId, Failure>,
    },
    /// The answer to `edit`, `delete`, `react`, `read` and `typing` that
    /// were not refused. On the sender's connection the change's own event
    /// frame (e.g. `message_edited`) comes before it.
    Done {
        /// The `client_id` of the frame, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        /// Whether the frame changed something (`false`: it asked for what
        /// already was, or a typing indicator was not relayed).
        changed: bool,
    },
    /// The answer to `ping`.
    Pong {
        /// The `client_id` of the `ping`.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
    },
}

/// Why a conversation could not be resumed (in `resume_complete.failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Kith's error code, e.g. `not_found`.
    pub code: &'static str,
    /// A human-readable explanation, without internal details.
    pub message: String,
}

impl ServerFrame<'_> {
    /// The frame as JSON text. Never empty: should serialising fail, the
    /// failure is logged and an `internal` error frame (with the frame's
    /// `client_id`) is returned instead.
    pub fn to_json(&self) -> String {
        to_json_or_internal(self, self.client_id())
    }

    /// The `client_id` the frame answers, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ServerFrame::Ack { client_id, .. } => Some(client_id),
            ServerFrame::Error { client_id, .. }
            | ServerFrame::Done { client_id, .. }
            | ServerFrame::Pong { client_id } => *client_id,
            _ => None,
        }
    }
}

/// `value` as JSON, or the fixed `internal` error frame if that fails.
fn to_json_or_internal<T: Serialize>(value: &T, client_id: Option<&str>) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        Err(e) => {
            tracing::error!(error = %e, "a server frame could not be serialised");
            let mut frame = serde_json::json!({
                "type": "error",
                "code": "internal",
                "message": "internal error",
            });
            if let Some(id) = client_id {
                frame["client_id"] = id.into();
            }
            frame.to_string()
        }
    }
}

/// The top-level `"client_id"` string of a JSON object, read leniently:
/// from a frame that is too large, too deeply nested or otherwise invalid
/// after that field. Linear in the text's length and without recursion, so
/// nesting cannot defeat it; the text is bounded by the hard frame limit.
pub(crate) fn client_id_of(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = skip_whitespace(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    loop {
        i = skip_whitespace(bytes, i + 1);
        let key_end = string_end(bytes, i)?;
        let key: String = serde_json::from_str(text.get(i..key_end)?).ok()?;
        i = skip_whitespace(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_whitespace(bytes, i + 1);
        let value_end = value_end(bytes, i)?;
        if key == "client_id" {
            return serde_json::from_str(text.get(i..value_end)?).ok();
        }
        i = skip_whitespace(bytes, value_end);
        if bytes.get(i) != Some(&b',') {
            return None;
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the JSON string starting at `i`.
fn string_end(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match bytes.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The end of the JSON value starting at `i`, found by counting brackets
/// outside strings (a lenient skip, not a validation).
fn value_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => string_end(bytes, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match bytes.get(j)? {
                    b'"' => {
                        j = string_end(bytes, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while bytes
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_and_reject_unknown_shapes() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","conversation_id":"7","client_id":"c1","body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(f.client_id(), Some("c1"));
        let r: ClientFrame =
            serde_json::from_str(r#"{"type":"resume","conversations":{"7":3}}"#).unwrap();
        assert_eq!(
            r,
            ClientFrame::Resume {
                conversations: [(ConversationId::new(7), 3)].into_iter().collect()
            }
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping","x":1}"#).is_err());
    }

    #[test]
    fn server_frames_are_tagged() {
        let json = ServerFrame::Pong { client_id: None }.to_json();
        assert_eq!(json, r#"{"type":"pong"}"#);
        let done = ServerFrame::Done {
            client_id: Some("r1"),
            changed: false,
        };
        assert_eq!(
            done.to_json(),
            r#"{"type":"done","client_id":"r1","changed":false}"#
        );
    }

    #[test]
    fn typing_takes_an_optional_client_id() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"typing","conversation_id":"7","client_id":"t"}"#)
                .unwrap();
        assert_eq!(f.client_id(), Some("t"));
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"typing","conversation_id":"7"}"#).unwrap();
        assert_eq!(f.client_id(), None);
    }

    #[test]
    fn a_frame_that_fails_to_serialise_becomes_an_internal_error() {
        // JSON object keys must be strings: a map keyed by lists fails.
        let unserialisable: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        let json = to_json_or_internal(&unserialisable, Some("c\"1"));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({ "type": "error", "code": "internal", "message": "internal error", "client_id": "c\"1" })
        );
        let json = to_json_or_internal(&unserialisable, None);
        assert!(!json.contains("client_id"), "{json}");
    }

    #[test]
    fn the_top_level_client_id_is_read_from_any_frame() {
        let deep = format!(
            r#"{{"type":"send","body":"a \"client_id\": \"no\"","x":{}1{},"client_id":"c\u0031"}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let cases: [(&str, Option<&str>); 11] = [
            (r#"{"type":"ping","client_id":"p1"}"#, Some("p1")),
            (r#" { "client_id" : "a" , "type": 7 "#, Some("a")),
            (&deep, Some("c1")),
            (r#"{"type":"shout","inner":{"client_id":"no"}}"#, None),
            (
                r#"{"x":[{"client_id":"no"}],"client_id":"yes"}"#,
                Some("yes"),
            ),
            (r#"{"x":"}]\"","client_id":"yes"}"#, Some("yes")),
            (r#"{"x":true,"n":-1.5e3,"client_id":"yes"}"#, Some("yes")),
            (r#"{"client_id":17}"#, None),
            (r#"{"client_id":"unterminated"#, None),
            (r#"["client_id","no"]"#, None),
            ("{not json", None),
        ];
        for (text, expected) in cases {
            assert_eq!(client_id_of(text).as_deref(), expected, "{text}");
        }
        // Truncated anywhere, it finds the client_id once it is complete.
        let text = r#"{"a":[{"b":"\"}é"}], "n" : 1, "client_id":"c\u0031"}"#;
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                let expected = (end + 1 >= text.len()).then_some("c1");
                assert_eq!(client_id_of(prefix).as_deref(), expected, "{prefix}");
            }
        }
    }
}
