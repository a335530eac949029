//! The wire protocol `kith.v1`: JSON text frames tagged by `type`.
//!
//! `docs/PROTOCOL.md` is the specification with an example of every frame;
//! this module is its implementation. Server frames that carry a core
//! [`Event`](kith_core::Event) are that event's own serialisation (its `type`
//! is the event's name, e.g. `message_created`); the frames below are the
//! transport's own.

use std::collections::BTreeMap;

use kith_core::{Change, ConversationId, MessageId, ReactionKind, Timestamp, UnreadEntry, UserId};
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
    /// Sustained abuse (too many invalid frames): do not reconnect at once.
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
}

/// A frame from the client.
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
        /// Echoed in an `error` answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Deletes one's message.
    Delete {
        /// Where.
        conversation_id: ConversationId,
        /// Which message.
        message_id: MessageId,
        /// Echoed in an `error` answer.
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
        /// Echoed in an `error` answer.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The user is typing in a conversation.
    Typing {
        /// Where.
        conversation_id: ConversationId,
    },
    /// Marks a conversation read up to `seq`.
    Read {
        /// Where.
        conversation_id: ConversationId,
        /// The newest message read.
        seq: u64,
        /// Echoed in an `error` answer.
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
            | ClientFrame::Ping { client_id } => client_id.as_deref(),
            ClientFrame::Typing { .. } | ClientFrame::Resume { .. } => None,
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
        /// A human-readable explanation.
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
    /// One replayed change of a conversation (during resume), in its current state.
    Change {
        /// The conversation.
        conversation_id: ConversationId,
        /// The change.
        change: &'a Change,
    },
    /// The replay is over; live frames follow. Gives the version each
    /// resumed conversation is now at for this client.
    ResumeComplete {
        /// Conversation id to version.
        conversations: BTreeMap<ConversationId, u64>,
    },
    /// Someone is typing; treat it as over after `expires_in_ms` unless repeated.
    Typing {
        /// Where.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
        /// How long the indicator lasts.
        expires_in_ms: u64,
    },
    /// A friend came online or went offline.
    Presence {
        /// Who.
        user_id: UserId,
        /// Whether they have an open connection.
        online: bool,
        /// When they went offline (absent while online).
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<Timestamp>,
    },
    /// The answer to `ping`.
    Pong {
        /// The `client_id` of the `ping`.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys
        // and no fallible `Serialize` impls.
        serde_json::to_string(self).unwrap_or_default()
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
    }
}
