//! One WebSocket connection: a reader that turns client frames into Kith
//! calls, and a writer task that drains the connection's outbox.
//!
//! The loop is generic over any `Sink<Message>` + `Stream<Item = Result<Message, E>>`,
//! so it runs over a real socket or over in-memory channels in tests.
//!
//! **Handshake and resume.** The connection is registered with the hub as
//! soon as it opens, so from then on every change reaches its outbox. Until
//! the client's first frame has been handled, the writer holds back the
//! frames of versioned conversation changes. If that first frame is
//! `resume`, the reader replays every change after the client's versions
//! (`Chat::changes_since`, read after the registration, so nothing falls
//! between the two) and hands the replay to the writer, which sends it, then
//! `resume_complete`, then the held frames, dropping any whose version the
//! replay already covered. Later frames of a resumed conversation at or
//! below the replayed version are dropped too. Hence no gap and no duplicate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{Sink, SinkExt, Stream, StreamExt};
use kith_core::{ConversationId, Error, Kith, NewMessage, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Identity;
use crate::hub::{Frame, Hub, Outbox};
use crate::protocol::{close, ClientFrame, ServerFrame};
use crate::WsConfig;

/// How long the writer gets to deliver a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the reader hands the writer once the first frame was handled.
struct Replay {
    frames: Vec<Frame>,
    /// Per resumed conversation, the version the replay covered.
    floors: HashMap<ConversationId, u64>,
    /// Told once the writer has queued the replay, so that the reader's
    /// later replies cannot overtake it.
    written: oneshot::Sender<()>,
}

/// Everything a connection needs besides its socket.
pub(crate) struct Shared {
    pub kith: Kith,
    pub hub: Arc<Hub>,
    pub config: WsConfig,
}

/// Serves one authenticated connection until it closes.
pub(crate) async fn serve<S, E>(socket: S, shared: Arc<Shared>, identity: Identity)
where
    S: Sink<Message, Error = E> + Stream<Item = Result<Message, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let user = identity.user_id;
    let (subscription, first) = shared.hub.subscribe(user, identity.session);
    if first && shared.config.presence {
        announce_presence(&shared, user, true).await;
    }
    let outbox = Arc::clone(subscription.outbox());
    let (sink, stream) = socket.split();
    let (replay_tx, replay_rx) = mpsc::unbounded_channel();
    let mut writer = tokio::spawn(write_loop(
        sink,
        Arc::clone(&outbox),
        replay_rx,
        shared.config.ping_interval,
        Arc::clone(&shared.hub),
    ));
    let mut reader = Reader {
        shared: &shared,
        user,
        outbox: &outbox,
        replay: Some(replay_tx),
        strikes: Vec::new(),
        typing: HashMap::new(),
        sending: FuturesOrdered::new(),
    };
    // The reader stops only between frames (when the client goes away or a
    // close is requested), never in the middle of a Kith call: a message
    // committed by `send` is always published and acknowledged.
    let code = reader.run(stream).await;
    reader.finish_sends().await;
    outbox.close(code);
    // The writer sends the close frame, unless it is stuck on a client that
    // stopped reading, in which case dropping it drops the socket.
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    drop(subscription);
    if shared.config.presence && !shared.hub.is_online(user) {
        announce_presence(&shared, user, false).await;
    }
}

/// Tells the user's friends that they came online or went offline.
async fn announce_presence(shared: &Shared, user: UserId, online: bool) {
    let last_seen = (!online).then(|| shared.kith.now());
    let Ok(friends) = shared.kith.graph().friend_ids(user).await else {
        return;
    };
    let frame = Frame::text(
        ServerFrame::Presence {
            user_id: user,
            online,
            last_seen,
        }
        .to_json(),
    );
    shared.hub.send(&friends, &frame);
}

/// The writer: drains the outbox, feeds every ready frame, flushes once.
async fn write_loop<W>(
    mut sink: W,
    outbox: Arc<Outbox>,
    mut replay: mpsc::UnboundedReceiver<Replay>,
    ping_interval: Duration,
    hub: Arc<Hub>,
) -> Result<(), W::Error>
where
    W: Sink<Message> + Unpin,
{
    let mut batch: Vec<Frame> = Vec::new();
    let mut held: Vec<Frame> = Vec::new();
    let mut floors: Option<HashMap<ConversationId, u64>> = None;
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    loop {
        tokio::select! {
            _ = outbox.ready() => {}
            Some(r) = replay.recv(), if floors.is_none() => {
                for frame in r.frames {
                    sink.feed(Message::Text(frame.into_text())).await?;
                }
                for frame in held.drain(..) {
                    if passes(&r.floors, &frame) {
                        sink.feed(Message::Text(frame.into_text())).await?;
                    }
                }
                floors = Some(r.floors);
                let _ = r.written.send(());
            }
            _ = ping.tick() => {
                sink.feed(Message::Ping(Bytes::new())).await?;
            }
        }
        let mut closing = outbox.drain(&mut batch);
        for frame in batch.drain(..) {
            match &floors {
                None if frame.order().is_some() => {
                    if held.len() >= hub.queue_len() {
                        hub.count_slow_consumer();
                        closing = Some(close::SLOW_CONSUMER);
                        break;
                    }
                    held.push(frame);
                }
                Some(f) if !passes(f, &frame) => {}
                _ => sink.feed(Message::Text(frame.into_text())).await?,
            }
        }
        if let Some(code) = closing {
            let reason = match code {
                close::GOING_AWAY => "server shutting down",
                close::SLOW_CONSUMER => "slow consumer: resume to catch up",
                close::SESSION_REVOKED => "session revoked",
                close::IDLE_TIMEOUT => "idle timeout",
                close::POLICY => "too many invalid frames",
                close::TOO_BIG => "frame too large",
                _ => "",
            };
            sink.feed(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await?;
            sink.flush().await?;
            return Ok(());
        }
        sink.flush().await?;
    }
}

/// Whether a frame is newer than what a resume replay already covered.
fn passes(floors: &HashMap<ConversationId, u64>, frame: &Frame) -> bool {
    match frame.order() {
        Some((conversation, version)) => floors.get(&conversation).is_none_or(|&f| version > f),
        None => true,
    }
}

struct Reader<'a> {
    shared: &'a Shared,
    user: UserId,
    outbox: &'a Outbox,
    /// Taken when the first frame has been handled.
    replay: Option<mpsc::UnboundedSender<Replay>>,
    /// When recent invalid frames arrived, for the abuse limit.
    strikes: Vec<Instant>,
    /// When this connection last announced typing in each conversation.
    typing: HashMap<ConversationId, Instant>,
    /// Sends queued in Kith and not yet answered, in the client's order.
    sending: FuturesOrdered<Sending>,
}

/// A send's conversation, client_id and outcome.
type SendOutcome = (
    ConversationId,
    String,
    kith_core::Result<kith_core::Message>,
);

/// A send in flight.
type Sending = BoxFuture<'static, SendOutcome>;

/// The most sends a connection has in flight; beyond that its reader waits
/// for the oldest to be answered before reading the next frame.
const MAX_SENDS_IN_FLIGHT: usize = 64;

impl Reader<'_> {
    /// Reads until the client goes away or must be closed; returns the close code.
    async fn run<R, E>(&mut self, mut stream: R) -> u16
    where
        R: Stream<Item = Result<Message, E>> + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let config = &self.shared.config;
        loop {
            let next = tokio::select! {
                // Frames already received are read first, so that sends
                // that arrived together are queued together and stored as
                // one batch; the sends in flight are bounded.
                biased;
                // Closing was requested (revoked session, slow consumer,
                // shutdown); the code is already set.
                () = self.outbox.closed() => return close::NORMAL,
                next = tokio::time::timeout(config.idle_timeout, stream.next()),
                    if self.sending.len() < MAX_SENDS_IN_FLIGHT => next,
                Some(outcome) = self.sending.next() => {
                    self.answer_send(outcome);
                    continue;
                }
            };
            let message = match next {
                Err(_) => return close::IDLE_TIMEOUT,
                Ok(None) => return close::NORMAL,
                Ok(Some(Err(e))) => {
                    return if too_big(&e) {
                        close::TOO_BIG
                    } else {
                        close::NORMAL
                    }
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    if text.len() > config.max_frame_bytes {
                        self.refuse(
                            "too_large",
                            "the frame is larger than the limit",
                            None,
                            None,
                        );
                    } else {
                        match serde_json::from_str::<ClientFrame>(&text) {
                            Ok(frame) => self.handle(frame).await,
                            Err(e) => {
                                let client_id = client_id_of(&text);
                                self.refuse(
                                    "invalid_frame",
                                    &e.to_string(),
                                    client_id.as_deref(),
                                    None,
                                );
                            }
                        }
                    }
                }
                Message::Binary(_) => {
                    self.refuse("invalid_frame", "frames are JSON text", None, None);
                }
                Message::Close(_) => return close::NORMAL,
                Message::Ping(_) | Message::Pong(_) => {}
            }
            if self.strikes.len() > config.abuse_limit {
                return close::POLICY;
            }
        }
    }

    /// Sends an error frame and counts a strike against the connection.
    fn refuse(
        &mut self,
        code: &str,
        message: &str,
        client_id: Option<&str>,
        retry_after_ms: Option<u64>,
    ) {
        let now = Instant::now();
        let window = self.shared.config.abuse_window;
        self.strikes.retain(|t| now.duration_since(*t) < window);
        self.strikes.push(now);
        self.reply(&ServerFrame::Error {
            code,
            message,
            client_id,
            retry_after_ms,
        });
    }

    fn refuse_error(&mut self, e: &Error, client_id: Option<&str>) {
        let retry = match e {
            Error::RateLimited { retry_after } => Some(retry_after.as_millis() as u64),
            _ => None,
        };
        self.refuse(e.code(), &e.to_string(), client_id, retry);
    }

    fn reply(&self, frame: &ServerFrame<'_>) {
        self.outbox.push(Frame::text(frame.to_json()));
    }

    /// Acknowledges a send, or refuses it.
    fn answer_send(&mut self, (conversation_id, client_id, outcome): SendOutcome) {
        match outcome {
            Ok(m) => self.reply(&ServerFrame::Ack {
                client_id: &m.client_id,
                conversation_id,
                message_id: m.id,
                seq: m.seq,
                version: m.version,
            }),
            Err(e) => self.refuse_error(&e, Some(&client_id)),
        }
    }

    /// Waits for every send in flight and answers it.
    async fn finish_sends(&mut self) {
        while let Some(outcome) = self.sending.next().await {
            self.answer_send(outcome);
        }
    }

    async fn handle(&mut self, frame: ClientFrame) {
        if let Some(replay) = self.replay.take() {
            let resume = match &frame {
                ClientFrame::Resume { conversations } => Some(conversations.clone()),
                _ => None,
            };
            let (written, queued) = oneshot::channel();
            let prepared = self.prepare_replay(resume.as_ref(), written).await;
            // The writer is gone only if the connection is closing.
            if replay.send(prepared).is_ok() {
                let _ = queued.await;
            }
            if resume.is_some() {
                return;
            }
        }
        if !matches!(
            frame,
            ClientFrame::Send { .. } | ClientFrame::Ping { .. } | ClientFrame::Typing { .. }
        ) {
            // Any other change waits for the sends before it, so it never
            // overtakes them (a `read` after a `send` covers the message).
            self.finish_sends().await;
        }
        let chat = self.shared.kith.chat();
        let client_id = frame.client_id().map(str::to_owned);
        let client_id = client_id.as_deref();
        let result = match frame {
            ClientFrame::Resume { .. } => {
                self.refuse(
                    "resume_not_first",
                    "resume must be the first frame",
                    None,
                    None,
                );
                return;
            }
            ClientFrame::Ping { .. } => {
                self.reply(&ServerFrame::Pong { client_id });
                return;
            }
            ClientFrame::Send {
                conversation_id,
                client_id: cid,
                body,
                reply_to,
            } => {
                // Queued in the conversation now, in the client's order;
                // answered when its batch is stored (`run` polls it).
                let sent = chat.send(
                    self.user,
                    conversation_id,
                    NewMessage {
                        client_id: cid.clone(),
                        body,
                        reply_to,
                    },
                );
                self.sending
                    .push_back(Box::pin(async move { (conversation_id, cid, sent.await) }));
                return;
            }
            ClientFrame::Edit {
                conversation_id,
                message_id,
                body,
                ..
            } => chat
                .edit(self.user, conversation_id, message_id, &body)
                .await
                .map(drop),
            ClientFrame::Delete {
                conversation_id,
                message_id,
                ..
            } => chat
                .delete(self.user, conversation_id, message_id)
                .await
                .map(drop),
            ClientFrame::React {
                conversation_id,
                message_id,
                kind,
                ..
            } => chat
                .react(self.user, conversation_id, message_id, kind)
                .await
                .map(drop),
            ClientFrame::Read {
                conversation_id,
                seq,
                ..
            } => match chat.mark_read(self.user, conversation_id, seq).await {
                Ok(_) => self.send_unread().await,
                Err(e) => Err(e),
            },
            ClientFrame::Typing { conversation_id } => self.typing(conversation_id).await,
        };
        if let Err(e) = result {
            self.refuse_error(&e, client_id);
        }
    }

    /// Relays a typing indicator, at most once per `typing_interval` per
    /// conversation and connection.
    async fn typing(&mut self, conversation_id: ConversationId) -> kith_core::Result<()> {
        let config = &self.shared.config;
        if !config.typing {
            return Ok(());
        }
        let now = Instant::now();
        if self
            .typing
            .get(&conversation_id)
            .is_some_and(|t| now.duration_since(*t) < config.typing_interval)
        {
            return Ok(());
        }
        let members = self
            .shared
            .kith
            .chat()
            .members(self.user, conversation_id)
            .await?;
        self.typing.insert(conversation_id, now);
        let others: Vec<UserId> = members
            .iter()
            .map(|m| m.user_id)
            .filter(|&u| u != self.user)
            .collect();
        let frame = Frame::text(
            ServerFrame::Typing {
                conversation_id,
                user_id: self.user,
                expires_in_ms: config.typing_ttl.as_millis() as u64,
            }
            .to_json(),
        );
        self.shared.hub.send(&others, &frame);
        Ok(())
    }

    async fn unread_frame(&mut self) -> kith_core::Result<Frame> {
        let counts = self.shared.kith.chat().unread(self.user).await?;
        Ok(Frame::text(
            ServerFrame::Unread {
                total: counts.total,
                conversations: &counts.conversations,
            }
            .to_json(),
        ))
    }

    async fn send_unread(&mut self) -> kith_core::Result<()> {
        let frame = self.unread_frame().await?;
        self.outbox.push(frame);
        Ok(())
    }

    /// The frames the writer sends before going live: the replay of each
    /// resumed conversation and `resume_complete` (when resuming), then the
    /// unread counts.
    async fn prepare_replay(
        &mut self,
        resume: Option<&BTreeMap<ConversationId, u64>>,
        written: oneshot::Sender<()>,
    ) -> Replay {
        let chat = self.shared.kith.chat();
        let mut frames = Vec::new();
        let mut floors = HashMap::new();
        if let Some(conversations) = resume {
            let mut reached = BTreeMap::new();
            for (&conversation_id, &since) in conversations {
                let mut since = since;
                loop {
                    match chat
                        .changes_since(self.user, conversation_id, since, None)
                        .await
                    {
                        Ok(set) => {
                            for change in &set.changes {
                                frames.push(Frame::text(
                                    ServerFrame::Change {
                                        conversation_id,
                                        change,
                                    }
                                    .to_json(),
                                ));
                            }
                            since = set.until;
                            if !set.more {
                                floors.insert(conversation_id, since);
                                reached.insert(conversation_id, since);
                                break;
                            }
                        }
                        Err(e) => {
                            let message = format!("cannot resume {conversation_id}: {e}");
                            frames.push(Frame::text(
                                ServerFrame::Error {
                                    code: e.code(),
                                    message: &message,
                                    client_id: None,
                                    retry_after_ms: None,
                                }
                                .to_json(),
                            ));
                            break;
                        }
                    }
                }
            }
            frames.push(Frame::text(
                ServerFrame::ResumeComplete {
                    conversations: reached,
                }
                .to_json(),
            ));
        }
        if let Ok(unread) = self.unread_frame().await {
            frames.push(unread);
        }
        Replay {
            frames,
            floors,
            written,
        }
    }
}

/// The `client_id` of a frame that did not parse, if it has one.
fn client_id_of(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("client_id")?.as_str().map(str::to_owned)
}

/// Whether a read error means the client sent a frame above the hard limit.
fn too_big<E: std::error::Error + 'static>(e: &E) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}
