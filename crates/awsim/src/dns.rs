//! The DNS server: answers questions about the emulated zones and the RDS endpoint names over UDP and
//! TCP (RFC 1035; TCP messages with their two-byte length prefix) on one address, as the VPC's
//! resolver would answer a database client. What it answers is `model::resolver`'s; this module is the
//! wire (hickory-proto's `Message`) and the sockets.
//!
//! Each question takes the world's lock once, for a snapshot of the answer (never across an await).
//! While DNS is "down" (`Admin::set_dns_down`), questions are logged and dropped unanswered, so the
//! client times out. Only the first question of a message is answered (as every resolver sends one).

use crate::model::resolver::{self, DnsQuery, Resolution};
use crate::server::Shared;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest UDP answer sent without EDNS (RFC 1035); a longer one is truncated (TC set) so the client
/// asks again over TCP.
const UDP_LIMIT: usize = 512;

/// Binds UDP on `addr` and TCP on the same address and port (when `addr`'s port is 0, a port free for
/// both), and serves both until `shutdown` is cancelled. Returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<SocketAddr> {
    let mut attempts = 0;
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => break (udp, tcp),
            // Port 0 gave a UDP port whose TCP twin is taken: try another.
            Err(_) if addr.port() == 0 && attempts < 10 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let bound = udp.local_addr()?;
    tracker.spawn(serve_udp(udp, shared.clone(), shutdown.clone()));
    tracker.spawn(serve_tcp(tcp, shared, shutdown));
    Ok(bound)
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                // On some systems an ICMP "port unreachable" from an earlier answer surfaces here.
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let Some(answer) = answer(&shared, &buf[..len]) else {
            continue;
        };
        let bytes = match fit_udp(answer) {
            Some(b) => b,
            None => continue,
        };
        if let Err(e) = socket.send_to(&bytes, peer).await {
            tracing::debug!(error = %e, %peer, "DNS send failed");
        }
    }
}

/// The answer's bytes, truncated to the question with TC set when they exceed what UDP carries.
fn fit_udp(answer: Message) -> Option<Vec<u8>> {
    let bytes = answer.to_vec().ok()?;
    let limit = answer
        .edns
        .as_ref()
        .map_or(UDP_LIMIT, |e| usize::from(e.max_payload()).max(UDP_LIMIT));
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let mut short = answer;
    short.answers.clear();
    short.metadata.truncation = true;
    short.to_vec().ok()
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let serve = async {
                loop {
                    let len = stream.read_u16().await?;
                    let mut msg = vec![0u8; usize::from(len)];
                    stream.read_exact(&mut msg).await?;
                    let Some(bytes) = answer(&shared, &msg).and_then(|m| m.to_vec().ok()) else {
                        // Down (or unparseable): say nothing, as over UDP; the client times out.
                        continue;
                    };
                    let Ok(len) = u16::try_from(bytes.len()) else {
                        continue;
                    };
                    stream.write_u16(len).await?;
                    stream.write_all(&bytes).await?;
                }
            };
            tokio::select! {
                r = serve => { let _: std::io::Result<()> = r; }
                () = shutdown.cancelled() => {}
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// The response to one DNS message, or `None` when it is to be dropped (DNS down, not a query, or
/// not parseable at all).
fn answer(shared: &Shared, bytes: &[u8]) -> Option<Message> {
    let request = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "undecodable DNS message");
            return None;
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(1232);
        response.set_edns(edns);
    }
    let Some(query) = request.queries.first().cloned() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some(response);
    };
    response.add_query(query.clone());
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Some(response);
    }
    let name = normalized(query.name());
    let record_type = query.query_type().to_string();
    let resolution = {
        let mut world = shared.world();
        let now = Instant::now();
        let at = world.clock.wall(now).to_string();
        let dropped = world.resolver.down;
        world.resolver.queries.push(DnsQuery {
            name: name.clone(),
            record_type: record_type.clone(),
            at,
            dropped,
        });
        if dropped {
            return None;
        }
        world.dns.prune_published(now);
        resolver::resolve(&world, &name, &record_type, now)
    };
    write_answer(&mut response, &query, resolution);
    Some(response)
}

fn write_answer(response: &mut Message, query: &hickory_proto::op::Query, resolution: Resolution) {
    if resolution.nx_domain {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    for a in resolution.answers {
        // The question's own spelling for its name, as resolvers echo it.
        let owner = if a.name == normalized(query.name()) {
            Some(query.name().clone())
        } else {
            to_name(&a.name)
        };
        match (owner, rdata(&a.record_type, &a.value)) {
            (Some(owner), Some(data)) => {
                response.add_answer(Record::from_rdata(owner, a.ttl, data));
            }
            _ => tracing::debug!(name = %a.name, value = %a.value, "a record the DNS server cannot encode is left out"),
        }
    }
}

/// A wire name in Route 53's normalized text form: lower case, trailing dot, bytes other than letters,
/// digits, `-` and `_` as `\ooo` octal escapes.
fn normalized(name: &Name) -> String {
    let mut out = String::new();
    for label in name.iter() {
        for &b in label {
            let b = b.to_ascii_lowercase();
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03o}"));
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// The wire name of a name in Route 53's text form (octal escapes decoded), or `None` if it is not a
/// valid DNS name (an empty or over-long label).
fn to_name(text: &str) -> Option<Name> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Some(Name::root());
    }
    let labels: Vec<Vec<u8>> = text.split('.').map(unescape).collect();
    Name::from_labels(labels).ok()
}

/// Decodes `\ooo` octal escapes.
fn unescape(label: &str) -> Vec<u8> {
    let b = label.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(|d| (b'0'..=b'7').contains(d)) {
            let v = u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The record data of a value in Route 53's text form, for the types the server encodes (A, AAAA,
/// CNAME, NS, PTR, TXT, MX, SRV, SOA); `None` for another type or a value that does not parse.
fn rdata(record_type: &str, value: &str) -> Option<RData> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    Some(match record_type {
        "A" => RData::A(A(value.trim().parse().ok()?)),
        "AAAA" => RData::AAAA(AAAA(value.trim().parse().ok()?)),
        "CNAME" => RData::CNAME(CNAME(to_name(value.trim())?)),
        "NS" => RData::NS(NS(to_name(value.trim())?)),
        "PTR" => RData::PTR(PTR(to_name(value.trim())?)),
        "TXT" => RData::TXT(TXT::new(txt_strings(value))),
        "MX" => match fields.as_slice() {
            [preference, exchange] => RData::MX(MX::new(preference.parse().ok()?, to_name(exchange)?)),
            _ => return None,
        },
        "SRV" => match fields.as_slice() {
            [priority, weight, port, target] => RData::SRV(SRV::new(
                priority.parse().ok()?,
                weight.parse().ok()?,
                port.parse().ok()?,
                to_name(target)?,
            )),
            _ => return None,
        },
        "SOA" => match fields.as_slice() {
            [mname, rname, serial, refresh, retry, expire, minimum] => RData::SOA(SOA::new(
                to_name(mname)?,
                to_name(rname)?,
                serial.parse().ok()?,
                refresh.parse().ok()?,
                retry.parse().ok()?,
                expire.parse().ok()?,
                minimum.parse().ok()?,
            )),
            _ => return None,
        },
        _ => return None,
    })
}

/// The character strings of a TXT value as Route 53 writes it: each in double quotes (`\"` and `\\`
/// escaped); an unquoted value is one string.
fn txt_strings(value: &str) -> Vec<String> {
    let value = value.trim();
    if !value.starts_with('"') {
        return vec![value.to_owned()];
    }
    let mut strings = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '"') => current = Some(String::new()),
            (None, _) => {}
            (Some(s), '\\') => {
                if let Some(next) = chars.next() {
                    s.push(next);
                }
            }
            (Some(_), '"') => strings.extend(current.take()),
            (Some(s), c) => s.push(c),
        }
    }
    strings.extend(current);
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_underscores_and_escapes_round_trip_through_the_wire_form() {
        let name = to_name("aurorawriteendpoint.aurora_private_hosted_zone.").unwrap();
        assert_eq!(normalized(&name), "aurorawriteendpoint.aurora_private_hosted_zone.");
        let star = to_name("\\052.example.com.").unwrap();
        assert_eq!(star.iter().next(), Some(&b"*"[..]));
        assert_eq!(normalized(&star), "\\052.example.com.");
        let upper: Name = "WWW.Example.COM.".parse().unwrap();
        assert_eq!(normalized(&upper), "www.example.com.");
    }

    #[test]
    fn txt_values_are_split_into_their_quoted_strings() {
        assert_eq!(txt_strings("\"a b\" \"c\\\"d\""), ["a b", "c\"d"]);
        assert_eq!(txt_strings("plain"), ["plain"]);
    }

    #[test]
    fn record_values_parse_into_record_data() {
        assert!(matches!(rdata("A", "127.0.0.2"), Some(RData::A(_))));
        assert!(matches!(rdata("AAAA", "::1"), Some(RData::AAAA(_))));
        assert!(matches!(rdata("MX", "10 mail.example.com."), Some(RData::MX(_))));
        assert!(rdata("A", "not-an-address").is_none());
        assert!(rdata("CAA", "0 issue \"amazon.com\"").is_none());
    }
}
