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
use kith_core::{ConversationId, Delivery, Error, Event, Kith, NewMessage, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Identity;
use crate::hub::{Frame, Hub, Outbox};
use crate::protocol::{client_id_of, close, ClientFrame, Failure, ServerFrame};
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
    let (subscription, _) = shared.hub.subscribe(user, identity.session);
    if shared.config.presence {
        if let Err(e) = shared.kith.graph().connected(user).await {
            tracing::error!(error = %e, %user, "presence not recorded");
        }
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
        served: Vec::new(),
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
    for id in reader.served.drain(..) {
        shared.kith.release(id);
    }
    if shared.config.presence {
        if let Err(e) = shared.kith.graph().disconnected(user).await {
            tracing::error!(error = %e, %user, "presence not recorded");
        }
    }
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
                close::INVALID_DATA => "invalid UTF-8",
                close::RESUME => "events may have been missed: resume to catch up",
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
    /// When recent frames that broke the protocol arrived, for the abuse
    /// limit.
    strikes: Vec<Instant>,
    /// When this connection last announced typing in each conversation.
    typing: HashMap<ConversationId, Instant>,
    /// The conversations its replay made the node serve
    /// ([`Kith::serve`]), released when it closes.
    served: Vec<ConversationId>,
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
                Ok(Some(Err(e))) => return close_code(&e),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    if text.len() > config.max_frame_bytes {
                        self.violation(
                            "too_large",
                            "the frame is larger than the limit",
                            client_id_of(&text).as_deref(),
                        );
                    } else {
                        match serde_json::from_str::<ClientFrame>(&text) {
                            Ok(frame) => self.handle(frame).await,
                            Err(e) => self.violation(
                                "invalid_frame",
                                &e.to_string(),
                                client_id_of(&text).as_deref(),
                            ),
                        }
                    }
                }
                Message::Binary(_) => {
                    self.violation("invalid_frame", "frames are JSON text", None);
                }
                Message::Close(_) => return close::NORMAL,
                Message::Ping(_) | Message::Pong(_) => {}
            }
            if self.strikes.len() > config.abuse_limit {
                return close::POLICY;
            }
        }
    }

    /// Answers a frame that breaks the protocol with an error, and counts
    /// it toward the abuse limit. (Refusals by Kith's rules are answers,
    /// not abuse: see [`Self::refuse`].)
    fn violation(&mut self, code: &str, message: &str, client_id: Option<&str>) {
        let now = Instant::now();
        let window = self.shared.config.abuse_window;
        self.strikes.retain(|t| now.duration_since(*t) < window);
        self.strikes.push(now);
        self.reply(&ServerFrame::Error {
            code,
            message,
            client_id,
            retry_after_ms: None,
        });
    }

    /// Answers a frame that Kith refused.
    fn refuse(&self, e: &Error, client_id: Option<&str>) {
        let retry_after_ms = match e {
            Error::RateLimited { retry_after } => Some(retry_after.as_millis() as u64),
            _ => None,
        };
        self.reply(&ServerFrame::Error {
            code: e.code(),
            message: &public_message(e),
            client_id,
            retry_after_ms,
        });
    }

    fn reply(&self, frame: &ServerFrame<'_>) {
        self.outbox.push(Frame::text(frame.to_json()));
    }

    /// Acknowledges a send, or refuses it.
    fn answer_send(&self, (conversation_id, client_id, outcome): SendOutcome) {
        match outcome {
            Ok(m) => self.reply(&ServerFrame::Ack {
                client_id: &m.client_id,
                conversation_id,
                message_id: m.id,
                seq: m.seq,
                version: m.version,
            }),
            Err(e) => self.refuse(&e, Some(&client_id)),
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
        let client_id = frame.client_id().map(str::to_owned);
        let client_id = client_id.as_deref();
        match frame {
            ClientFrame::Resume { .. } => {
                self.violation("resume_not_first", "resume must be the first frame", None);
            }
            ClientFrame::Ping { .. } => self.reply(&ServerFrame::Pong { client_id }),
            ClientFrame::Send {
                conversation_id,
                client_id: cid,
                body,
                reply_to,
            } => {
                // Queued in the conversation now, in the client's order;
                // answered when its batch is stored (`run` polls it).
                let sent = self.shared.kith.chat().send(
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
            }
            change => match self.change(change).await {
                Ok(changed) => self.reply(&ServerFrame::Done { client_id, changed }),
                Err(e) => self.refuse(&e, client_id),
            },
        }
    }

    /// Applies an `edit`, `delete`, `react`, `read` or `typing` frame and
    /// says whether it changed anything, for its `done`. This is the one
    /// place that decides `changed`:
    /// - `edit`: always (every edit stores a new version);
    /// - `delete`, `react`, `read`: what core says (`Updated::changed`,
    ///   `ReadState::changed`);
    /// - `typing`: whether the indicator was relayed.
    async fn change(&mut self, frame: ClientFrame) -> kith_core::Result<bool> {
        let chat = self.shared.kith.chat();
        let user = self.user;
        match frame {
            ClientFrame::Edit {
                conversation_id,
                message_id,
                body,
                ..
            } => {
                chat.edit(user, conversation_id, message_id, &body).await?;
                Ok(true)
            }
            ClientFrame::Delete {
                conversation_id,
                message_id,
                ..
            } => Ok(chat
                .delete(user, conversation_id, message_id)
                .await?
                .changed),
            ClientFrame::React {
                conversation_id,
                message_id,
                kind,
                ..
            } => Ok(chat
                .react(user, conversation_id, message_id, kind)
                .await?
                .changed),
            ClientFrame::Read {
                conversation_id,
                seq,
                ..
            } => {
                let state = chat.mark_read(user, conversation_id, seq).await?;
                // The read is done; failing to count what is left unread
                // does not undo it.
                match self.unread_frame().await {
                    Ok(frame) => {
                        self.outbox.push(frame);
                    }
                    Err(e) => tracing::error!(error = %e, "unread counts not sent"),
                }
                Ok(state.changed)
            }
            ClientFrame::Typing {
                conversation_id, ..
            } => self.typing(conversation_id).await,
            // Answered by `handle` itself.
            ClientFrame::Send { .. } | ClientFrame::Resume { .. } | ClientFrame::Ping { .. } => {
                Ok(false)
            }
        }
    }

    /// Relays a typing indicator to whom core says, at most once per
    /// `typing_interval` per conversation and connection; says whether it
    /// was relayed (not when coalesced or switched off).
    async fn typing(&mut self, conversation_id: ConversationId) -> kith_core::Result<bool> {
        let config = &self.shared.config;
        if !config.typing {
            return Ok(false);
        }
        let now = Instant::now();
        if self
            .typing
            .get(&conversation_id)
            .is_some_and(|t| now.duration_since(*t) < config.typing_interval)
        {
            return Ok(false);
        }
        let others = self
            .shared
            .kith
            .chat()
            .typing(self.user, conversation_id)
            .await?;
        self.typing.insert(conversation_id, now);
        self.shared.kith.relay(Delivery::new(
            Event::Typing {
                conversation_id,
                user_id: self.user,
                expires_in_ms: config.typing_ttl.as_millis() as u64,
            },
            others,
        ));
        Ok(true)
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
            let mut failed = BTreeMap::new();
            for (&conversation_id, &since) in conversations {
                let mut since = since;
                loop {
                    match chat
                        .changes_since(self.user, conversation_id, since, None)
                        .await
                    {
                        Ok(set) => {
                            for change in set.changes {
                                frames.push(Frame::event(&Event::Change {
                                    conversation_id,
                                    change,
                                }));
                            }
                            since = set.until;
                            if !set.more {
                                // Every later change reaches this node's
                                // sink, whoever commits it.
                                self.shared.kith.serve(conversation_id, since);
                                self.served.push(conversation_id);
                                floors.insert(conversation_id, since);
                                reached.insert(conversation_id, since);
                                break;
                            }
                        }
                        Err(e) => {
                            let failure = Failure {
                                code: e.code(),
                                message: public_message(&e),
                            };
                            failed.insert(conversation_id, failure);
                            break;
                        }
                    }
                }
            }
            frames.push(Frame::text(
                ServerFrame::ResumeComplete {
                    conversations: reached,
                    failed,
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

/// The message a client is shown for a Kith error
/// ([`Error::public_message`]); internal failures, whose details it hides,
/// are logged here.
fn public_message(e: &Error) -> String {
    if e.is_internal() {
        tracing::error!(error = %e, code = e.code(), "a WebSocket frame failed");
    }
    e.public_message()
}

/// The close code for an error reading the socket: [`close::TOO_BIG`] for
/// a frame above the hard limit, [`close::INVALID_DATA`] for a text frame
/// that is not UTF-8, else [`close::NORMAL`] (the client went away).
fn close_code<E: std::error::Error + 'static>(e: &E) -> u16 {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        match err.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => return close::TOO_BIG,
            Some(tungstenite::Error::Utf8(_)) => return close::INVALID_DATA,
            _ => {}
        }
        source = err.source();
    }
    close::NORMAL
}
