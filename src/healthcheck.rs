//! `aurora-failover-bot healthcheck`: the liveness probe of the container image, which has no curl.
//! One `GET /healthz` to a running bot, with a short timeout; the answer is `Ok` only for HTTP 200.
//!
//! It probes the bot process itself, over plain HTTP (what the bot serves; TLS is the proxy's in front
//! of it), so it needs no certificates and reads nothing but its arguments and the config file.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the whole check (connect, request, status line) may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The `/healthz` URL of a bot serving on `listen` (the config's `listen` key). An unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback. Errors when the port is 0 (chosen at start-up: nothing to
/// aim at).
pub fn url_for(listen: SocketAddr) -> Result<String, String> {
    if listen.port() == 0 {
        return Err(format!(
            "config key listen is {listen}: port 0 is chosen at start-up, so there is nothing to check; use --url"
        ));
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}/healthz", SocketAddr::new(ip, listen.port())))
}

/// GETs `url` (`http://HOST:PORT/PATH`) once. `Ok` when the answer is HTTP 200 within `timeout`;
/// otherwise `Err` with why, naming the URL: not an `http://` URL, no connection (refused, unreachable,
/// with the system's reason), no answer in time, or the status it answered.
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL such as http://127.0.0.1:3000/healthz ({e})"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "{url} is not an http:// URL with a host: probe the bot itself, such as http://127.0.0.1:3000/healthz"
        ));
    }
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(timeout));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_) => Err(format!("{url} did not answer within {} s", timeout.as_secs_f32())),
        Ok(Err(e)) => Err(format!("cannot reach {url}: {}", causes(&e))),
        Ok(Ok(response)) if response.status() == hyper::StatusCode::OK => Ok(()),
        Ok(Ok(response)) => Err(format!("{url} answered HTTP {}", response.status())),
    }
}

/// An error and its sources, each said once, joined with ": ".
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_checked_on_loopback() {
        let url = |s: &str| url_for(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:3000").unwrap(), "http://127.0.0.1:3000/healthz");
        assert_eq!(url("[::]:3000").unwrap(), "http://[::1]:3000/healthz");
        assert_eq!(url("10.1.2.3:8080").unwrap(), "http://10.1.2.3:8080/healthz");
        assert!(url("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[tokio::test]
    async fn only_plain_http_urls_are_probed() {
        for bad in ["https://bot.example.com/healthz", "127.0.0.1:3000", "not a url"] {
            let why = check(bad, TIMEOUT).await.unwrap_err();
            assert!(why.contains("http://"), "{bad}: {why}");
        }
    }
}
