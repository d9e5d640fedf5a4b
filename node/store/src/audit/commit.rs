//! Group commit: appends that must be on disk before their callers go on share one flush.
//!
//! Each caller appends its entry first, then registers here and waits. One committer thread per
//! log takes every waiter registered so far, flushes the store once and wakes them all with the
//! flush's result; callers that register while a flush runs are served by the next one. A waiter
//! is woken only by a flush that began after it registered, hence after its entry was written, so
//! the flush covers the entry. The disk sees one flush per group instead of one per entry
//! (the technique of database logs: Gawlick and Kinkade, "Varieties of concurrency control in
//! IMS/VS Fast Path", IEEE Database Engineering 8(2), 1985).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::StoreError;

/// What a flush tells the callers it covered: nothing, or the store's failure, shared by all.
pub(super) type Flushed = Result<(), Arc<StoreError>>;

/// A flush of everything written to the store so far.
pub(super) type Flush = Box<dyn Fn() -> Result<(), StoreError> + Send>;

/// Callers waiting for the next flush, and whether the log is closing.
#[derive(Default)]
struct Queue {
    waiting: Vec<oneshot::Sender<Flushed>>,
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a caller registers or the log closes.
    work: Condvar,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The committer of one log: its thread, and the queue it serves.
pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the committer thread (`audit-commit`), flushing with `flush`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub(super) fn start(flush: Flush) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
        });
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audit-commit".into())
            .spawn(move || commit(&serving, &flush))
            .map_err(|e| StoreError::Engine(format!("cannot start the audit's committer: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Registers a caller whose writes are done: the answer comes once a flush begun after this
    /// call has ended.
    pub(super) fn register(&self) -> oneshot::Receiver<Flushed> {
        let (done, flushed) = oneshot::channel();
        self.shared.queue().waiting.push(done);
        self.shared.work.notify_one();
        flushed
    }
}

/// What a waiter whose committer went away is told.
pub(super) fn gone() -> Arc<StoreError> {
    Arc::new(StoreError::Engine(
        "the audit log closed before its entry was flushed".into(),
    ))
}

/// The committer's loop: every waiter registered so far, one flush, every one of them woken.
fn commit(shared: &Shared, flush: &Flush) {
    loop {
        let group = {
            let mut queue = shared.queue();
            while queue.waiting.is_empty() && !queue.closing {
                queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
            if queue.waiting.is_empty() {
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        let flushed = flush().map_err(Arc::new);
        for waiter in group {
            // A caller that stopped waiting (its task dropped) needs no answer.
            let _ = waiter.send(flushed.clone());
        }
    }
}

impl Drop for GroupCommit {
    /// Serves the callers still waiting, then stops the thread and waits for it, so that the
    /// store it flushes can be closed and opened again.
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
