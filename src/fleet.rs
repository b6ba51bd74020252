//! Run one async job per host in a sliding window: at most `concurrency` at once, the next host
//! starting as soon as any finishes (never fixed batches waiting for the slowest). Results come
//! back in input order; one host's failure never stops the others.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub async fn run<T, R, F, Fut>(items: Vec<T>, concurrency: usize, job: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let n = items.len();
    // More permits than hosts buys nothing, and tokio panics above `Semaphore::MAX_PERMITS`:
    // validation bounds the profile and flag, this keeps any caller from the panic.
    let permits = Arc::new(Semaphore::new(concurrency.clamp(1, n.max(1))));
    let mut set = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let permits = permits.clone();
        let fut = job(item);
        set.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            (i, fut.await)
        });
    }
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    while let Some(res) = set.join_next().await {
        match res {
            Ok((i, r)) => out[i] = Some(r),
            // A panic in a job is a bug; surface it rather than lose a host silently.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out.into_iter()
        .map(|r| r.expect("every job reported"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn sliding_window_bounds_concurrency_and_keeps_order() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let out = super::run((0..20u64).collect(), 4, |i| {
            let running = running.clone();
            let peak = peak.clone();
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Uneven durations: a fixed-batch runner would idle here, a window does not.
                tokio::time::sleep(Duration::from_millis(5 * (i % 3))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..20u64).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(peak.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn a_window_wider_than_tokio_allows_runs_every_host() {
        let out = super::run(vec![1u8, 2, 3], usize::MAX, |i| async move { i + 1 }).await;
        assert_eq!(out, [2, 3, 4]);
    }
}
