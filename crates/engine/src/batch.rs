//! Group commit.
//!
//! Callers hand a group of items to a [`Batcher`] and wait for their results. One loop
//! takes everything queued, runs it as one store call (one transaction, one fsync), and
//! answers each group. While a batch commits, the next one accumulates, so under load
//! batches grow on their own and durability stops capping throughput; when idle, a lone
//! request goes straight through.
//!
//! One caller's bad write must not fail the others: when a batch of several groups fails
//! with an error that one group could have caused (not, say, the database being down),
//! each group is run again on its own, so only the group at fault gets the error.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

type Reply<O, E> = oneshot::Sender<Result<Vec<O>, Arc<E>>>;

pub struct Batcher<I, O, E> {
    tx: mpsc::UnboundedSender<(Vec<I>, Reply<O, E>)>,
}

impl<I, O, E> Clone for Batcher<I, O, E> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

/// The batcher's loop ended (the engine is shutting down).
#[derive(Debug)]
pub struct Closed;

impl<I, O, E> Batcher<I, O, E>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    /// Starts the loop. `run` gets all queued items (at most `max` unless one group is
    /// larger) and must return exactly one output per item, in order. `isolate` says
    /// whether an error may come from one group's items (then each group of the failed
    /// batch is retried alone) or concerns them all (then all get it).
    pub fn spawn<F, Fut>(
        max: usize,
        run: F,
        isolate: fn(&E) -> bool,
    ) -> (Self, tokio::task::JoinHandle<()>)
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<I>, Reply<O, E>)>();
        let handle = tokio::spawn(async move {
            let mut carry = None;
            loop {
                let first = match carry.take() {
                    Some(g) => g,
                    None => match rx.recv().await {
                        Some(g) => g,
                        None => break,
                    },
                };
                let mut items: Vec<I> = Vec::new();
                let mut replies: Vec<(usize, Reply<O, E>)> = Vec::new();
                let (group, reply) = first;
                replies.push((group.len(), reply));
                items.extend(group);
                while items.len() < max {
                    match rx.try_recv() {
                        Ok((group, reply)) if items.len() + group.len() <= max => {
                            replies.push((group.len(), reply));
                            items.extend(group);
                        }
                        Ok(g) => {
                            carry = Some(g);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // Kept only when there is someone else's group to protect.
                let copy = (replies.len() > 1).then(|| items.clone());
                match run(items).await {
                    Ok(outputs) => {
                        let mut outputs = outputs.into_iter();
                        for (n, reply) in replies {
                            let _ = reply.send(Ok(outputs.by_ref().take(n).collect()));
                        }
                    }
                    Err(e) if isolate(&e) && copy.is_some() => {
                        tracing::warn!(error = %e, groups = replies.len(), "a batched write failed; writing its groups one by one");
                        let mut items = copy.unwrap_or_default().into_iter();
                        for (n, reply) in replies {
                            let group: Vec<I> = items.by_ref().take(n).collect();
                            let _ = reply.send(run(group).await.map_err(Arc::new));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for (_, reply) in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        (Batcher { tx }, handle)
    }

    /// Queues a group and waits for its outputs.
    pub async fn run(&self, items: Vec<I>) -> Result<Result<Vec<O>, Arc<E>>, Closed> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((items, tx)).map_err(|_| Closed)?;
        rx.await.map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn concurrent_groups_share_a_batch_and_get_their_own_outputs() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (b, _h) = Batcher::<u32, u32, String>::spawn(
            1000,
            move |items| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(items.len());
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(items.into_iter().map(|i| i * 10).collect())
                }
            },
            |_| true,
        );
        let mut joins = Vec::new();
        for i in 0..50u32 {
            let b = b.clone();
            joins.push(tokio::spawn(async move {
                b.run(vec![i, i + 1000]).await.unwrap().unwrap()
            }));
        }
        for (i, j) in joins.into_iter().enumerate() {
            let i = i as u32;
            assert_eq!(j.await.unwrap(), vec![i * 10, (i + 1000) * 10]);
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.len() < 50, "groups were combined: {sizes:?}");
    }

    #[tokio::test]
    async fn errors_reach_every_group_of_the_batch() {
        let (b, _h) = Batcher::<u32, u32, String>::spawn(
            10,
            |_| async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err("disk full".to_string())
            },
            |_| false,
        );
        let joins: Vec<_> = (0..5)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.run(vec![i]).await.unwrap() })
            })
            .collect();
        for j in joins {
            assert_eq!(*j.await.unwrap().unwrap_err(), "disk full");
        }
    }

    /// A group whose items make the write fail gets the error; the groups batched with it
    /// are written (each alone) and get their outputs.
    #[tokio::test]
    async fn a_bad_group_fails_alone() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let (b, _h) = Batcher::<u32, u32, String>::spawn(
            1000,
            move |items: Vec<u32>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(items.clone());
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    if items.contains(&0) {
                        return Err("NUL in a message".to_string());
                    }
                    Ok(items)
                }
            },
            |e| e.starts_with("NUL"),
        );
        let joins: Vec<_> = (0..20u32)
            .map(|i| {
                let b = b.clone();
                // Group i holds i and 100 + i; group 0 is the poisoned one.
                tokio::spawn(async move { (i, b.run(vec![i, 100 + i]).await.unwrap()) })
            })
            .collect();
        for j in joins {
            let (i, out) = j.await.unwrap();
            if i == 0 {
                assert_eq!(*out.unwrap_err(), "NUL in a message");
            } else {
                assert_eq!(out.unwrap(), vec![i, 100 + i]);
            }
        }
        let calls = calls.lock().unwrap();
        assert!(
            calls.iter().any(|c| c.len() > 2),
            "groups were batched: {calls:?}"
        );
    }
}
