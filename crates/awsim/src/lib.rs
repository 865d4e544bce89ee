//! awsim: an emulator of the Aurora Global Database, Route 53, CloudWatch, STS, IAM and Secrets Manager
//! calls that aurora-failover-bot makes, with a DNS server for the emulated names, faithful enough to catch
//! a wrong runbook and fast enough to run in every test. The real AWS SDK for Rust talks to it unchanged
//! through `AWS_ENDPOINT_URL`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = awsim::start("127.0.0.1:0".parse().unwrap(), awsim::Scenario::two_region_example()).await?;
//! println!("point the SDK at {}", sim.url());
//! sim.admin().region_down("us-east-1", awsim::OutageMode::Reset).unwrap();
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `scenario` (what the world starts with), `model` (the control plane: resources, transitions
//! over time, faults, the call log), `protocol` (the wire formats), `server` (HTTP, routing by SigV4
//! scope), `dns` (the DNS server for the emulated zones and the RDS endpoints), `admin` (control,
//! in-process and over HTTP).

pub mod admin;
mod dns;
pub mod model;
pub mod protocol;
pub mod scenario;
mod server;

pub use admin::{Admin, AdminError, Snapshot, TimingsPatch};
pub use model::iam::{IamPrincipal, IamRule, IamView, Principal, RuleEffect, SimulatorMode};
pub use model::rds::{
    ClusterKey, ClusterSettings, ClusterView, Event, GlobalClusterView, InstancePatch, InstanceView, Monitoring,
    SettingsPatch, WriteForwarding,
};
pub use model::resolver::DnsQuery;
pub use model::route53::{AliasTarget, ChangedRecord, Failover, RecordSet};
pub use model::timings::Timings;
pub use model::{ApiError, CallRecord, FaultCode, FaultSpec, OutageMode};
pub use scenario::{IamSpec, Scenario, ScenarioError};

use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running emulator. Dropping it stops the server; `shutdown` also waits for it to finish.
pub struct Awsim {
    addr: SocketAddr,
    url: String,
    admin: Admin,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The DNS servers' tasks (`serve_dns`), which end with `shutdown`.
    dns_tasks: TaskTracker,
}

/// Starts the emulator on `addr` (port 0 picks a free port) with the world `scenario` describes.
pub async fn start(addr: SocketAddr, scenario: Scenario) -> std::io::Result<Awsim> {
    scenario
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(server::Shared::new(scenario));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(listener, shared.clone(), shutdown.clone()));
    Ok(Awsim {
        addr,
        url: format!("http://{addr}"),
        admin: Admin { shared },
        shutdown,
        task: Some(task),
        dns_tasks: TaskTracker::new(),
    })
}

impl Awsim {
    /// The base URL to give the AWS SDK as its endpoint (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Control of the emulated world.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Starts a DNS server on `addr` (UDP, and TCP on the same port; port 0 picks a free one) that
    /// answers for the emulated hosted zones and the RDS endpoint names (see `model::resolver`), and
    /// returns the address it is bound to. It stops when the emulator is dropped or shut down. May be
    /// called more than once (each server answers from the same world).
    pub async fn serve_dns(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        dns::serve(addr, self.admin.shared.clone(), self.shutdown.clone(), &self.dns_tasks).await
    }

    /// Stops accepting connections, closes the open ones and waits for the server tasks (HTTP and
    /// DNS) to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.dns_tasks.close();
        self.dns_tasks.wait().await;
    }
}

impl Drop for Awsim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
