//! Engine tests under paused tokio time (`#[tokio::test(start_paused = true)]`): every wait, deadline,
//! retry and expiry of the runbook and the approvals, run in milliseconds of real time against the
//! engine's own ports. `fakes` holds a small scriptable AWS world (Aurora, Route 53, CloudWatch, IAM's
//! simulator) with injectable errors and a log of every call, a recorder for `Chat`, and a harness
//! that starts a run from an approved request in the in-memory store. The clock is
//! `ports::TokioClock`, so the `Clock` and the sleeps agree. Tests assert on what can be seen from
//! outside: the store (run state, journal), what was sent to AWS and when, and the notes queued.

mod approval_timing;
mod fakes;
mod runbook_timing;
