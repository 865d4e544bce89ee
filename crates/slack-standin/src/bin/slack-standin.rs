//! The Slack stand-in as a process, for benchmarks that run the bot as a process (`scripts/bench`).
//!
//! `slack-standin [BOT_TOKEN]` starts the fake Web API and response_url receiver on a free loopback port,
//! prints its Web API base URL (give it to the bot as `slack.api_url`; response URLs are
//! `{base without /api}/response/{n}` for any number n) on the first line of stdout, keeps none of what it
//! receives (so a long load does not grow it), and runs until SIGTERM or Ctrl-C.

use standin::{Secret, SlackStandIn};
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let token = std::env::args().nth(1).unwrap_or_else(|| "xoxb-bench".to_owned());
    let slack = SlackStandIn::start(&Secret::new(token)).await?;
    slack.keep_calls(false);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", slack.api_url())?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
