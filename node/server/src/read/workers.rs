//! The threads that make batches: a fixed number per node (`[limits] read_workers`), shared by
//! every read, each taking the next step any read has asked for. However many reads are open,
//! the node has these threads and no more; a read waiting its turn holds none.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::ReadError;

type Job = Box<dyn FnOnce() + Send>;

/// A node's batch workers. Dropping the last handle lets the threads finish and exit.
pub(super) struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `count` threads named `read-worker-N` (at least one).
    pub(super) fn start(count: usize) -> Arc<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("read-worker-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = next else { break };
                        // A job that panics loses its answer, not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a read worker");
            }
        }
        Arc::new(Self { jobs })
    }

    /// Runs `job` on the next free worker and waits for its result without holding a thread.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ReadError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        let lost =
            || ReadError::internal("a batch could not be made (see the node's log); ask again");
        self.jobs.send(job).map_err(|_| lost())?;
        result.await.map_err(|_| {
            tracing::error!("a read worker lost a batch: its job panicked");
            lost()
        })
    }
}
