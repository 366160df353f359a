//! Group commit: concurrent [`execute`](ledger_core::LedgerStore::execute) calls are coalesced
//! into shared batches, each decided in order and committed in one transaction.
//!
//! The naive design commits one transaction per transfer, and every transfer through a hot
//! account (a settlement or liquidity account that they all touch) waits for the previous one's
//! commit, fsync included. Here, requests queue on a channel; a flusher takes everything queued
//! (up to `batch_max` commands), runs it as one batch through the locking protocol, and answers
//! each caller with its own outcomes. While one batch commits, the next one fills, so the cost of
//! a commit is shared by every request in it and a hot account is locked once per batch rather
//! than once per transfer. Nothing waits on a timer: a lone request is flushed at once.
//!
//! Each request is still decided on its own against the effects of the ones before it, and a
//! rejected request changes nothing, exactly as with single execution. If a combined batch fails
//! as a whole (a storage error, not a rejection), each request in it is re-run on its own, so one
//! bad request cannot fail its neighbours.

use std::sync::Arc;

use ledger_core::ports::{Outcome, Submission};
use ledger_core::{StoreError, Timestamp};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::PgStore;
use crate::execute::execute;

/// How group commit runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// How many batches may be in flight at once (each holds one connection while it commits).
    /// Two lets one batch fill while the other commits; more mostly adds contention on hot
    /// accounts (measured on 2 cores: 1 and 2 within noise of each other, 4 clearly slower).
    pub flushers: usize,
    /// The most commands in one batch.
    pub batch_max: usize,
    /// How many requests may wait before callers are slowed down (back-pressure).
    pub queue_max: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> GroupCommitConfig {
        GroupCommitConfig { flushers: 2, batch_max: 512, queue_max: 8_192 }
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, StoreError>>;

struct Request {
    batch: Vec<Submission>,
    now: Timestamp,
    reply: Reply,
}

/// The sending side shared by every clone of a group-committing [`PgStore`].
#[derive(Debug)]
pub(crate) struct Group {
    requests: mpsc::Sender<Request>,
}

/// The flushers stopped (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("group commit is not running")]
struct Stopped;

impl Group {
    /// Starts `config.flushers` flusher tasks over `store` (which must not group itself).
    pub(crate) fn start(store: PgStore, config: GroupCommitConfig) -> Group {
        let (requests, receiver) = mpsc::channel(config.queue_max.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..config.flushers.max(1) {
            tokio::spawn(flush(store.clone(), receiver.clone(), config.batch_max.max(1)));
        }
        Group { requests }
    }

    /// Queues a batch and waits for its outcomes.
    pub(crate) async fn execute(&self, batch: &[Submission], now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { batch: batch.to_vec(), now, reply };
        self.requests.send(request).await.map_err(|_| StoreError::backend(Stopped))?;
        answer.await.map_err(|_| StoreError::backend(Stopped))?
    }
}

/// One flusher: take what is queued, commit it as one batch, answer, repeat.
async fn flush(store: PgStore, receiver: Arc<Mutex<mpsc::Receiver<Request>>>, batch_max: usize) {
    loop {
        let requests = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut size = first.batch.len();
            let mut requests = vec![first];
            while size < batch_max {
                match receiver.try_recv() {
                    Ok(next) => {
                        size += next.batch.len();
                        requests.push(next);
                    }
                    Err(_) => break,
                }
            }
            requests
        };
        commit(&store, requests).await;
    }
}

async fn commit(store: &PgStore, requests: Vec<Request>) {
    // The batch runs at the latest of its callers' instants, so time never goes backwards
    // for any of them.
    let now = requests.iter().map(|r| r.now).max().expect("at least one request");
    let combined: Vec<Submission> = requests.iter().flat_map(|r| r.batch.iter().cloned()).collect();
    match execute(store, &combined, now).await {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for request in requests {
                let mine: Vec<Outcome> = outcomes.by_ref().take(request.batch.len()).collect();
                let _ = request.reply.send(Ok(mine));
            }
        }
        Err(error) if requests.len() == 1 => {
            let request = requests.into_iter().next().expect("one request");
            let _ = request.reply.send(Err(error));
        }
        Err(error) => {
            tracing::warn!(%error, requests = requests.len(), "group batch failed; retrying its requests one by one");
            for request in requests {
                let result = execute(store, &request.batch, request.now).await;
                let _ = request.reply.send(result);
            }
        }
    }
}
