//! Approval expiry under paused time: a pending request expires at `request_ttl` and not before, and
//! a decision after that is refused.

use super::fakes::{Api, Bot, user};
use crate::approval::{Approvals, Origin, Refusal, RequestReply};
use crate::store::{RequestId, RequestState};
use crate::types::Mode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The example configuration's `request_ttl_secs`.
const TTL: Duration = Duration::from_secs(900);

/// Requests a detach of `orders` as a requester and waits until it is planned and pending.
async fn pending_request(bot: &Bot, approvals: &Approvals) -> RequestId {
    assert_eq!(bot.settings.approval.request_ttl, TTL);
    let origin = Origin {
        channel: "C0INCIDENT",
        response_url: None,
        team_domain: None,
    };
    let orders = bot.settings.cluster("orders").unwrap();
    let reply = approvals
        .request_failover(
            &user("U0AAAA"),
            orders,
            crate::approval::Ask {
                mode: Some(Mode::Detach),
                ..Default::default()
            },
            origin,
        )
        .await;
    let RequestReply::Accepted { id } = reply else {
        panic!("not accepted: {reply:?}")
    };
    for _ in 0..100 {
        let r = bot.store.request(id).await.unwrap().unwrap();
        if r.state == RequestState::Pending {
            return id;
        }
        tokio::task::yield_now().await;
    }
    panic!("request {id} was never planned")
}

/// The expiry task as the bot runs it: `expire_due` every second until `stop`.
fn expiry_task(approvals: Approvals, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { approvals.expire_every(Duration::from_secs(1), stop).await })
}

async fn state(bot: &Bot, id: RequestId) -> RequestState {
    bot.store.request(id).await.unwrap().unwrap().state
}

#[tokio::test(start_paused = true)]
async fn a_pending_request_expires_at_its_ttl_and_not_before_and_a_later_approval_is_refused() {
    let bot = Bot::new();
    let approvals = bot.approvals();
    let stop = CancellationToken::new();
    let expiry = expiry_task(approvals.clone(), stop.clone());
    let id = pending_request(&bot, &approvals).await;
    let requested = bot.since_start(bot.store.request(id).await.unwrap().unwrap().requested_at);
    let expired_key = format!("request:{id}:expired");

    tokio::time::sleep(TTL - Duration::from_secs(1)).await;
    assert_eq!(
        state(&bot, id).await,
        RequestState::Pending,
        "one second before its expiry"
    );
    assert!(bot.chat.said_with(&expired_key).is_none());

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state(&bot, id).await, RequestState::Expired);
    let said = bot.chat.said_with(&expired_key).expect("the thread is told");
    assert!(
        said.at >= requested + TTL && said.at <= requested + TTL + Duration::from_secs(1),
        "expired at {:?}, asked at {requested:?}",
        said.at
    );

    assert_eq!(
        approvals.decide(id, &user("U0BBBB"), true).await,
        Err(Refusal::Expired(id))
    );
    assert_eq!(state(&bot, id).await, RequestState::Expired);
    assert!(bot.store.run_of_request(id).await.unwrap().is_none(), "no run");
    assert!(bot.aws.calls(Api::RemoveFromGlobalCluster).is_empty());
    stop.cancel();
    expiry.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_approval_at_the_expiry_instant_is_refused_before_the_expiry_task_runs() {
    let bot = Bot::new();
    let approvals = bot.approvals();
    let id = pending_request(&bot, &approvals).await;
    let request = bot.store.request(id).await.unwrap().unwrap();
    let left = request
        .expires_at
        .duration_since(crate::ports::Clock::now(bot.clock.as_ref()))
        .unsigned_abs();
    tokio::time::sleep(left).await;

    assert_eq!(
        approvals.decide(id, &user("U0BBBB"), true).await,
        Err(Refusal::Expired(id))
    );
    assert!(bot.store.run_of_request(id).await.unwrap().is_none(), "no run");
    assert_eq!(state(&bot, id).await, RequestState::Pending, "not closed by the click");
    approvals.expire_due().await;
    assert_eq!(state(&bot, id).await, RequestState::Expired);
}
