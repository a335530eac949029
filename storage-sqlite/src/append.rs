//! Group commit of message appends.
//!
//! [`SqliteStore::append_message`](kith_core::ChatStore::append_message)
//! does not open a transaction of its own: it queues the message and waits.
//! A writer task takes every append waiting (up to the store's batch limit,
//! [`DEFAULT_APPEND_BATCH`] unless changed with
//! [`SqliteStore::set_append_batch_limit`]), runs them in order in **one**
//! `BEGIN IMMEDIATE` transaction on the writer connection, commits once, and
//! only then answers every caller. A batch of several runs set-based
//! (`chat::append_many`: a fixed number of statements whatever its size,
//! each append getting the outcome it would have had alone); if one of those
//! statements fails, the transaction is rolled back and the batch replayed
//! in a new one, one append at a time, each inside a `SAVEPOINT` of its own
//! (the set-based path runs without a savepoint: one would make SQLite copy
//! every page it changes to a statement journal first). An append
//! that fails (the sender is not a member, a constraint fails) is rolled
//! back alone and gets its own error; the others commit. If the transaction
//! itself fails (`BEGIN`, a savepoint, `COMMIT`), nothing of the batch is
//! stored and every caller gets an error. So an `Ok` still means committed
//! and, with `synchronous=FULL`, durable; only the cost of the commit, the
//! WAL sync, is shared by the batch.
//!
//! The writer task takes the writer connection through [`SqliteStore::write`]
//! like every other write, so a batch never interleaves with another write
//! transaction. It is spawned on demand, on the runtime of the caller that
//! found the queue idle, and ends as soon as the queue is empty: no task
//! outlives the traffic, and a store used from several runtimes (tests) works.
//! While a batch commits (one WAL sync), the next appends queue up, so the
//! batches grow with the load on their own, without waiting on a timer.
//!
//! A caller that goes away (its future dropped) only stops listening: its
//! append stays queued and is committed with its batch, which idempotency on
//! `(sender, client_id)` makes safe to retry. If the writer task itself is
//! dropped (its runtime shuts down), the transaction is rolled back and every
//! caller it had taken or left queued gets an error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kith_core::{Appended, Error, NewMessageRecord, Result};
use sqlx::{Sqlite, Transaction};
use tokio::sync::oneshot;

use crate::SqliteStore;

/// The default largest number of appends committed together.
pub const DEFAULT_APPEND_BATCH: usize = 256;

/// The queue of appends waiting for the writer task.
#[derive(Debug)]
pub(crate) struct Appender {
    state: Mutex<State>,
    limit: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    /// Whether a writer task is running (and will see the queue).
    running: bool,
}

#[derive(Debug)]
struct Job {
    record: NewMessageRecord,
    reply: oneshot::Sender<Result<Appended>>,
}

impl Default for Appender {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            limit: AtomicUsize::new(DEFAULT_APPEND_BATCH),
        }
    }
}

impl Appender {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it, so a
        // panic elsewhere while it was locked cannot have broken it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
}

/// Clears `running` and fails the queued appends if the writer task is
/// dropped before it empties the queue (its runtime shut down, or it
/// panicked); disarmed when it ends normally.
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
        state.running = false;
        // Dropping the jobs drops their reply senders: the callers get an
        // error instead of waiting forever.
        state.queue.clear();
    }
}

/// Why a statement of a batch failed.
enum Failure {
    /// This append alone: it was rolled back to its savepoint.
    Append(Error),
    /// The transaction: the whole batch is lost.
    Batch(String),
}

impl SqliteStore {
    /// Queues appends, one after the other, for the writer task and waits
    /// for their outcomes.
    pub(crate) async fn append_grouped(
        &self,
        records: &[NewMessageRecord],
    ) -> Vec<Result<Appended>> {
        let mut outcomes = Vec::with_capacity(records.len());
        let spawn = {
            let mut state = self.appender.lock();
            for record in records {
                let (reply, outcome) = oneshot::channel();
                state.queue.push_back(Job {
                    record: record.clone(),
                    reply,
                });
                outcomes.push(outcome);
            }
            !std::mem::replace(&mut state.running, true)
        };
        if spawn {
            let store = self.clone();
            tokio::spawn(async move { store.run_writer().await });
        }
        let mut answers = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            answers.push(
                outcome
                    .await
                    .unwrap_or_else(|_| Err(Error::storage("the SQLite writer task was stopped"))),
            );
        }
        answers
    }

    /// The writer task: commits batches until the queue is empty.
    async fn run_writer(self) {
        let mut running = Running {
            appender: Arc::clone(&self.appender),
            armed: true,
        };
        loop {
            let batch: Vec<Job> = {
                let mut state = self.appender.lock();
                if state.queue.is_empty() {
                    // Under the lock: a caller that queues after this
                    // spawns a new writer task.
                    state.running = false;
                    running.armed = false;
                    return;
                }
                let n = state.queue.len().min(self.appender.limit());
                state.queue.drain(..n).collect()
            };
            self.commit_batch(batch).await;
        }
    }

    /// Runs `batch` in one transaction and answers every caller after the
    /// commit.
    async fn commit_batch(&self, batch: Vec<Job>) {
        let mut tx = match self.write().await {
            Ok(tx) => tx,
            Err(err) => return fail_all(batch, &err.to_string()),
        };
        let mut outcomes = None;
        if batch.len() > 1 {
            let records: Vec<&NewMessageRecord> = batch.iter().map(|job| &job.record).collect();
            match crate::chat::append_many(&mut tx, &records).await {
                Ok(done) => outcomes = Some(done),
                Err(_) => {
                    // Some statement failed part-way: start again from a
                    // clean transaction, one append at a time.
                    if let Err(err) = tx.rollback().await {
                        return fail_all(batch, &err.to_string());
                    }
                    tx = match self.write().await {
                        Ok(tx) => tx,
                        Err(err) => return fail_all(batch, &err.to_string()),
                    };
                }
            }
        }
        let outcomes = match outcomes {
            Some(outcomes) => outcomes,
            None => match one_by_one(&mut tx, &batch).await {
                Ok(outcomes) => outcomes,
                Err(message) => return fail_all(batch, &message),
            },
        };
        if outcomes.iter().all(Result::is_err) {
            // Nothing to commit; dropping the transaction rolls it back.
            drop(tx);
        } else if let Err(err) = tx.commit().await {
            return fail_all(batch, &err.to_string());
        }
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that went away does not listen any more.
            let _ = job.reply.send(outcome);
        }
    }
}

/// The outcome of every append of `batch`, one after the other inside `tx`,
/// each in a savepoint of its own when there are several (a batch of one
/// needs none: if it fails, the transaction is rolled back as a whole).
/// `Err` if the transaction itself failed.
async fn one_by_one(
    tx: &mut Transaction<'static, Sqlite>,
    batch: &[Job],
) -> Result<Vec<Result<Appended>>, String> {
    let savepoints = batch.len() > 1;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        match append_one(tx, &job.record, savepoints).await {
            Ok(appended) => outcomes.push(Ok(appended)),
            Err(Failure::Append(err)) => outcomes.push(Err(err)),
            Err(Failure::Batch(message)) => return Err(message),
        }
    }
    Ok(outcomes)
}

/// Answers every job of a lost batch with the same storage error.
fn fail_all(batch: Vec<Job>, message: &str) {
    for job in batch {
        let _ = job.reply.send(Err(Error::storage(format!(
            "the append batch was rolled back: {message}"
        ))));
    }
}

/// Runs a statement that manages the batch's transaction.
async fn control(tx: &mut Transaction<'static, Sqlite>, sql: &'static str) -> Result<(), Failure> {
    sqlx::query(sql)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|e| Failure::Batch(e.to_string()))
}

/// One append of a batch, inside a savepoint of its own if `savepoint`.
async fn append_one(
    tx: &mut Transaction<'static, Sqlite>,
    record: &NewMessageRecord,
    savepoint: bool,
) -> Result<Appended, Failure> {
    if !savepoint {
        return crate::chat::append(tx, record)
            .await
            .map_err(Failure::Append);
    }
    control(tx, "SAVEPOINT append").await?;
    match crate::chat::append(tx, record).await {
        Ok(appended) => {
            control(tx, "RELEASE append").await?;
            Ok(appended)
        }
        Err(err) => {
            control(tx, "ROLLBACK TO append").await?;
            control(tx, "RELEASE append").await?;
            Err(Failure::Append(err))
        }
    }
}
