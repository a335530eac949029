//! Group commit of appends across calls (and so across conversations).
//!
//! Off by default: every `append_message` / `append_messages` call runs its
//! own transaction (see `send.rs`). With
//! [`PgStore::set_group_commit_limit`] above 1, a call queues its records
//! instead; up to [`WRITERS`] writer tasks take every call waiting (whole
//! calls, in order, up to the limit in records, at least one call) and run
//! them as **one** batch in one transaction (`send::append_batch`: the
//! conversations locked in id order, set-based statements, each message the
//! outcome it would have had alone at its place), commit once and only
//! then answer every caller. One commit (one WAL flush) then covers many
//! conversations, as kith-sqlite's writer does.
//!
//! Acknowledgements keep their meaning: a caller gets `Ok` only after the
//! transaction holding its records committed. If the transaction itself
//! fails, nothing of it is stored and every caller in it gets the error.
//! The writer tasks are spawned (they run to completion even if a caller's
//! future is dropped, so a dropped caller's records may still be stored,
//! which idempotency on `(sender, client_id)` makes safe to retry). They end
//! as soon as the queue is empty.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::*;

/// The most writer tasks (transactions of grouped appends) at once.
pub(crate) const WRITERS: usize = 4;

/// The queue of appends waiting for a writer task.
#[derive(Debug, Default)]
pub(crate) struct Appender {
    state: Mutex<State>,
    /// The most records one grouped transaction takes; 0 or 1: no grouping.
    limit: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    /// Writer tasks running.
    writers: usize,
}

/// One call's records and where its outcomes go.
#[derive(Debug)]
struct Job {
    records: Vec<NewMessageRecord>,
    reply: oneshot::Sender<Result<Vec<Result<Appended>>>>,
}

impl Appender {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is a single statement, so a panic
        // elsewhere while it was locked cannot have broken it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit, if grouping is on.
    pub(crate) fn limit(&self) -> Option<usize> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|&n| n > 1)
    }

    /// Takes whole jobs from the front of the queue, up to `limit` records
    /// (at least one job).
    fn take(&self, limit: usize) -> Vec<Job> {
        let mut state = self.lock();
        let mut jobs = Vec::new();
        let mut records = 0;
        while let Some(next) = state.queue.front() {
            if !jobs.is_empty() && records + next.records.len() > limit {
                break;
            }
            records += next.records.len();
            if let Some(job) = state.queue.pop_front() {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            state.writers -= 1;
        }
        jobs
    }
}

/// Lowers the writer count and fails the queued calls if a writer task is
/// dropped before it empties the queue (its runtime shut down, or it
/// panicked), unless another writer is still running; disarmed when it ends
/// normally.
struct Running {
    appender: Arc<Appender>,
    armed: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.appender.lock();
        state.writers -= 1;
        if state.writers == 0 {
            // Dropping the jobs drops their reply senders: the callers get
            // an error instead of waiting forever.
            state.queue.clear();
        }
    }
}

/// Queues `records` (one call) for a writer task and waits for their
/// outcomes.
pub(super) async fn append_grouped(
    store: &PgStore,
    records: &[NewMessageRecord],
) -> Result<Vec<Result<Appended>>> {
    let (reply, outcome) = oneshot::channel();
    let spawn = {
        let mut state = store.appender.lock();
        state.queue.push_back(Job {
            records: records.to_vec(),
            reply,
        });
        let spawn = state.writers < WRITERS;
        if spawn {
            state.writers += 1;
        }
        spawn
    };
    if spawn {
        let store = store.clone();
        tokio::spawn(async move { write(store).await });
    }
    outcome
        .await
        .unwrap_or_else(|_| Err(Error::storage("the append writer task stopped")))
}

/// A writer task: runs the waiting calls, a group at a time, until the
/// queue is empty.
async fn write(store: PgStore) {
    let mut running = Running {
        appender: Arc::clone(&store.appender),
        armed: true,
    };
    loop {
        let limit = store.appender.limit().unwrap_or(1);
        let jobs = store.appender.take(limit);
        if jobs.is_empty() {
            // `take` lowered the writer count.
            running.armed = false;
            return;
        }
        let records: Vec<NewMessageRecord> = jobs
            .iter()
            .flat_map(|job| job.records.iter().cloned())
            .collect();
        match send::append_batch(&store, &records).await {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for job in jobs {
                    let mine: Vec<Result<Appended>> =
                        outcomes.by_ref().take(job.records.len()).collect();
                    // A caller that went away does not listen any more.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(err) if jobs.len() == 1 => {
                if let Some(job) = jobs.into_iter().next() {
                    let _ = job.reply.send(Err(err));
                }
            }
            Err(err) => {
                let message = err.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(Error::storage(message.clone())));
                }
            }
        }
    }
}
