//! The HTTP front: one listener for every Region and every service. Each request is routed by its SigV4
//! credential scope (Region and service) or, under `/_awsim/`, to the admin API; Region outages and
//! injected faults are applied before the model sees the call; every call is logged with its answer.
//!
//! The accept loop is hand-written on hyper (rather than axum) for one reason: a Region that is down in
//! `reset` mode must close the connection without any response, which a service can do in hyper by
//! returning an error, and which a router that must always produce a response cannot.

use crate::model::{ApiError, CallRecord, OutageMode, World};
use crate::protocol::{cbor, iam, json, query, rest, sigv4};
use crate::scenario::Scenario;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest request body accepted (Route 53 change batches are at most 32,000 characters of values).
const BODY_LIMIT: usize = 1 << 20;

/// State shared by every connection.
pub(crate) struct Shared {
    /// The emulated world. A std mutex: it is never held across an await, and every critical section
    /// is short (one API action).
    pub world: Mutex<World>,
    /// The scenario `reset` returns to: the last one loaded.
    pub scenario: Mutex<Scenario>,
    /// Source of request ids.
    request_seq: AtomicU64,
}

impl Shared {
    pub fn new(scenario: Scenario) -> Shared {
        Shared {
            world: Mutex::new(World::from_scenario(&scenario, Instant::now())),
            scenario: Mutex::new(scenario),
            request_seq: AtomicU64::new(0),
        }
    }

    /// Locks the world, advanced to now.
    pub fn world(&self) -> MutexGuard<'_, World> {
        let mut w = self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        w.advance(Instant::now());
        w
    }

    fn request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{:08x}-a5e1-4d1b-9c0f-{:012x}", n >> 48, n & 0xffff_ffff_ffff)
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub(crate) struct Abort;

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the emulator (Region down)")
    }
}

impl std::error::Error for Abort {}

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Accepts connections until `shutdown` is cancelled, then waits for open connections to close.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

pub(crate) fn xml_response(status: u16, body: String, request_id: &str) -> HttpResponse {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "text/xml")
        .header("x-amzn-RequestId", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

/// Renders an error as its service's wire format.
type Render = fn(&ApiError, &str) -> HttpResponse;

fn rds_error(e: &ApiError, request_id: &str) -> HttpResponse {
    xml_response(e.status, query::error_body(e, request_id), request_id)
}

fn route53_error(e: &ApiError, request_id: &str) -> HttpResponse {
    xml_response(e.status, rest::error_body(e, request_id), request_id)
}

fn sts_error(e: &ApiError, request_id: &str) -> HttpResponse {
    xml_response(e.status, iam::error_body(e, request_id, iam::STS_XMLNS), request_id)
}

fn iam_error(e: &ApiError, request_id: &str) -> HttpResponse {
    xml_response(e.status, iam::error_body(e, request_id, iam::IAM_XMLNS), request_id)
}

fn cbor_response(status: u16, body: Vec<u8>, request_id: &str) -> HttpResponse {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/cbor")
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("x-amzn-RequestId", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

fn json_response(status: u16, body: Vec<u8>, request_id: &str) -> HttpResponse {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-RequestId", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

fn json_error(e: &ApiError, request_id: &str) -> HttpResponse {
    let mut resp = json_response(e.status, json::error_body(e), request_id);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&e.code) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

fn cbor_error(e: &ApiError, request_id: &str) -> HttpResponse {
    let mut resp = cbor_response(e.status, cbor::error_body(e), request_id);
    let fault = if e.status >= 500 { "Receiver" } else { "Sender" };
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{};{fault}", e.code)) {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<HttpResponse, Abort> {
    if req.uri().path().starts_with("/_awsim/") {
        return Ok(crate::admin::handle_http(&shared, req).await);
    }
    let request_id = shared.request_id();
    let scope = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(sigv4::scope_of);
    let Some(scope) = scope else {
        let e = ApiError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token: sign it with SigV4 (any credentials will do).",
        );
        return Ok(xml_response(e.status, query::error_body(&e, &request_id), &request_id));
    };
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let query_string = req.uri().query().map(str::to_owned);
    let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::new(413, "RequestEntityTooLarge", "The request body is too large.");
            return Ok(xml_response(e.status, query::error_body(&e, &request_id), &request_id));
        }
    };
    match scope.service.as_str() {
        "rds" | "sts" | "iam" => {
            let mut params = query_string
                .map(|q| query::Params::parse(q.as_bytes()))
                .unwrap_or_default();
            params.0.extend(query::Params::parse(&body).0);
            let (service, render): (&'static str, Render) = match scope.service.as_str() {
                "rds" => ("rds", rds_error),
                "sts" => ("sts", sts_error),
                _ => ("iam", iam_error),
            };
            let Some(action) = params.get("Action").map(str::to_owned) else {
                let e = ApiError::new(400, "MissingAction", "The request must contain the parameter Action");
                return Ok(render(&e, &request_id));
            };
            // IAM is global and its endpoint is in us-east-1: the SDK signs IAM for us-east-1 with AWS's
            // endpoint, and for the client's Region with a custom endpoint; either way a us-east-1
            // outage takes it down. STS is regional.
            let outage_region = if service == "iam" {
                "us-east-1".to_owned()
            } else {
                scope.region.clone()
            };
            let call = Call {
                service,
                region: scope.region,
                outage_region,
                action,
                params: params.for_log(),
                request_id,
                access_key: scope.access_key.clone(),
            };
            run(&shared, call, render, |world, now, call| {
                let body = match call.service {
                    "rds" => query::handle(world, &call.region, &call.action, &params, now, &call.request_id),
                    "sts" => iam::handle_sts(world, &call.action, &call.request_id),
                    _ => iam::handle_iam(world, &call.action, &params, &call.request_id),
                }?;
                Ok(xml_response(200, body, &call.request_id))
            })
            .await
        }
        "route53" => {
            let Some(op) = rest::route(&method, &path, query_string.as_deref()) else {
                let e = ApiError::new(
                    404,
                    "UnknownOperationException",
                    format!("The emulator does not serve {method} {path}"),
                );
                return Ok(xml_response(e.status, rest::error_body(&e, &request_id), &request_id));
            };
            let mut params = op.params();
            if let Some(summary) = matches!(op, rest::Op::ChangeResourceRecordSets { .. })
                .then(|| rest::summarize_changes(&body))
                .flatten()
            {
                params.insert("Changes".into(), summary);
            }
            let call = Call {
                service: "route53",
                region: scope.region,
                // Route 53's control plane lives in us-east-1.
                outage_region: "us-east-1".to_owned(),
                action: op.action().to_owned(),
                params,
                request_id,
                access_key: scope.access_key.clone(),
            };
            run(&shared, call, route53_error, |world, now, call| {
                rest::handle(world, &op, &body, now, &call.request_id)
                    .map(|body| xml_response(200, body, &call.request_id))
            })
            .await
        }
        "monitoring" => {
            let Some(operation) = path.strip_prefix(cbor::PATH_PREFIX).map(str::to_owned) else {
                let e = ApiError::new(
                    404,
                    "UnknownOperationException",
                    format!("The emulator does not serve {method} {path}"),
                );
                return Ok(cbor_error(&e, &request_id));
            };
            let call = Call {
                service: "monitoring",
                region: scope.region.clone(),
                outage_region: scope.region,
                action: operation,
                params: BTreeMap::new(),
                request_id,
                access_key: scope.access_key.clone(),
            };
            run(&shared, call, cbor_error, |world, now, call| {
                cbor::handle(world, &call.region, &call.action, &body, now)
                    .map(|b| cbor_response(200, b, &call.request_id))
            })
            .await
        }
        "secretsmanager" => {
            let Some(action) = target
                .as_deref()
                .and_then(|t| t.strip_prefix(json::TARGET_PREFIX))
                .map(str::to_owned)
            else {
                let e = ApiError::new(
                    400,
                    "UnknownOperationException",
                    "The request needs an X-Amz-Target header such as secretsmanager.GetSecretValue",
                );
                return Ok(json_error(&e, &request_id));
            };
            let call = Call {
                service: "secretsmanager",
                region: scope.region.clone(),
                // Secrets Manager is regional.
                outage_region: scope.region,
                action,
                params: json::params_for_log(&body),
                request_id,
                access_key: scope.access_key.clone(),
            };
            run(&shared, call, json_error, |world, _now, call| {
                json::handle(world, &call.region, &call.action, &body).map(|b| json_response(200, b, &call.request_id))
            })
            .await
        }
        other => {
            let e = ApiError::new(
                400,
                "UnknownService",
                format!("The emulator serves rds, route53, monitoring, sts, iam and secretsmanager, not {other}"),
            );
            Ok(xml_response(e.status, query::error_body(&e, &request_id), &request_id))
        }
    }
}

/// One API call on its way through outages, faults and the model.
struct Call {
    service: &'static str,
    region: String,
    /// The Region whose outage fails this call.
    outage_region: String,
    action: String,
    params: BTreeMap<String, String>,
    request_id: String,
    access_key: String,
}

/// Fails the call if its Region is down: `Err` drops the connection, `Ok` is a 503.
fn outage_answer(world: &mut World, seq: u64, call: &Call, render: Render) -> Option<Result<HttpResponse, Abort>> {
    match world.outage(&call.outage_region)? {
        OutageMode::Reset => {
            world.finish_call(seq, 0, Some("ConnectionReset".into()));
            Some(Err(Abort))
        }
        OutageMode::Unavailable => {
            let e = ApiError::new(
                503,
                "ServiceUnavailable",
                format!("The service is unavailable in {}.", call.outage_region),
            );
            world.finish_call(seq, e.status, Some(e.code.clone()));
            Some(Ok(render(&e, &call.request_id)))
        }
    }
}

async fn run(
    shared: &Shared,
    call: Call,
    render: Render,
    act: impl FnOnce(&mut World, Instant, &Call) -> Result<HttpResponse, ApiError>,
) -> Result<HttpResponse, Abort> {
    let (seq, fault) = {
        let mut world = shared.world();
        let at = world.clock.wall(Instant::now()).to_string();
        let seq = world.record_call(CallRecord {
            seq: 0,
            service: call.service.to_owned(),
            region: call.region.clone(),
            action: call.action.clone(),
            params: call.params.clone(),
            at,
            status: 0,
            error: None,
            access_key: call.access_key.clone(),
        });
        if let Some(answer) = outage_answer(&mut world, seq, &call, render) {
            return answer;
        }
        (seq, world.take_fault(&call.action, &call.region))
    };
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    let answer = {
        let mut world = shared.world();
        if fault.delay.is_some()
            && let Some(answer) = outage_answer(&mut world, seq, &call, render)
        {
            return answer;
        }
        let result = match fault.error {
            Some(e) => Err(e),
            None => act(&mut world, Instant::now(), &call),
        };
        match result {
            Ok(response) => {
                world.finish_call(seq, response.status().as_u16(), None);
                response
            }
            Err(e) => {
                tracing::debug!(action = %call.action, region = %call.region, code = %e.code, "answering with an error");
                world.finish_call(seq, e.status, Some(e.code.clone()));
                render(&e, &call.request_id)
            }
        }
    };
    if let Some(hold) = fault.delay_response {
        tokio::time::sleep(hold).await;
    }
    Ok(answer)
}
