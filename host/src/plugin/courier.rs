//! Carries a user's HTTP exchange off its fiber. A guest's `send` runs on the user's fiber
//! stack; hyper's deep read/parse/write path would run there too, and with a thousand users a
//! thousand different stacks would pass through the cache per round. Instead `send` posts the
//! request here and parks; the user's task (on the worker thread's own, always-warm stack) runs
//! the exchange on the user's connection and hands the result back before resuming the guest.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;

use crate::client::{CompletedResponse, Connection, HttpError, OutgoingRequest};

type Outcome = Result<CompletedResponse, HttpError>;

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Posted(OutgoingRequest),
    Done(Outcome),
}

/// The hand-over point between one user's fiber and its task (never contended: both run on
/// one thread, one after the other; the lock only makes the Store data `Send`).
#[derive(Default)]
pub struct Courier {
    slot: Mutex<Slot>,
}

impl Courier {
    fn with<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut slot)
    }

    /// Fiber side: posts the request and waits for its outcome. Only [`drive`] completes it,
    /// and it polls the guest call again right after, so no waker is needed.
    pub async fn exchange(&self, request: OutgoingRequest) -> Outcome {
        self.with(|slot| *slot = Slot::Posted(request));
        poll_fn(|_| {
            self.with(|slot| match std::mem::take(slot) {
                Slot::Done(outcome) => Poll::Ready(outcome),
                other => {
                    *slot = other;
                    Poll::Pending
                }
            })
        })
        .await
    }

    fn take_posted(&self) -> Option<OutgoingRequest> {
        self.with(|slot| match std::mem::take(slot) {
            Slot::Posted(request) => Some(request),
            other => {
                *slot = other;
                None
            }
        })
    }
}

/// Task side: runs a guest call to its end, performing each exchange the guest posts on `conn`.
/// While an exchange runs the call is not polled: the guest is parked in `send` waiting for it.
pub async fn drive<F: Future>(courier: &Courier, conn: &mut Connection, call: F) -> F::Output {
    let mut call = pin!(call);
    loop {
        let posted = poll_fn(|cx| match call.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Err(output)),
            Poll::Pending => match courier.take_posted() {
                Some(request) => Poll::Ready(Ok(request)),
                None => Poll::Pending,
            },
        })
        .await;
        match posted {
            Ok(request) => {
                let outcome = conn.send(request).await;
                courier.with(|slot| *slot = Slot::Done(outcome));
            }
            Err(output) => return output,
        }
    }
}
