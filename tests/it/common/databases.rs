//! Real database servers for the probe's tests: PostgreSQL (a primary, and a streaming standby made
//! with `pg_basebackup -R`) and MariaDB (for Aurora MySQL), installed by scripts/db-deps, each with TLS
//! from a test CA made here, listening only on its own loopback address, with database `app`, the
//! probe user [`PROBE_USER`] (password auth only: scram-sha-256 on `hostssl` lines for PostgreSQL)
//! and the heartbeat table [`HEARTBEAT_TABLE`] it may write.
//!
//! Every server is a direct child of the test process, started from the calling thread with
//! `setpriv --pdeathsig KILL` (applied after its uid change), so that it dies with the test even when
//! the test is killed; drop (or [`DbServer::stop`]) kills it, waits for it and removes its data. As
//! root the servers run as `postgres` and `nobody` (PostgreSQL refuses root; MariaDB needs `--user`).
//! Servers are started from the test's own thread (not `spawn_blocking`), because the death signal
//! follows the thread that started them.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The database every server has.
pub const DATABASE: &str = "app";
/// The probe's user on every server.
pub const PROBE_USER: &str = "afb_probe";
/// Its password (the tests check that no error shows it).
pub const PROBE_PASSWORD: &str = "probe-Pw-7c1e9f";
/// `writer varchar(200) primary key, written_at timestamp`, writable by [`PROBE_USER`].
pub const HEARTBEAT_TABLE: &str = "afb_heartbeat";
/// Where Debian's PostgreSQL 15 keeps its server programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long a server may take to accept connections.
const READY: Duration = Duration::from_secs(30);

/// A certificate authority for the tests, its PEM in a temporary directory: the bot's `ca_bundle`.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "aurora-failover-bot test CA");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        TestCa {
            dir,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA's certificate (PEM).
    pub fn pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `names` signed by this CA, and its key, both PEM.
    pub fn issue(&self, names: &[String]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(names.to_vec()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names.first().cloned().unwrap_or_default());
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Where and as what a server listens.
pub struct ServerSpec<'a> {
    /// A loopback address (`127.0.0.x`); several servers may share a port on different addresses.
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The DNS names its certificate carries.
    pub tls_names: Vec<String>,
    pub ca: &'a TestCa,
}

/// A port free on every one of `ips` at once (bound and released; a race with another process is
/// possible but unlikely).
pub fn free_port_on(ips: &[Ipv4Addr]) -> u16 {
    for _ in 0..200 {
        let port = TcpListener::bind((ips[0], 0)).unwrap().local_addr().unwrap().port();
        if ips[1..].iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Postgres,
    MariaDb,
}

/// A running server; killed, waited for and removed on drop.
pub struct DbServer {
    engine: Engine,
    child: Option<Child>,
    /// Holds the data, the socket, the certificate and the log; removed on drop.
    dir: tempfile::TempDir,
    pub address: SocketAddr,
    /// Started from a primary (`postgres_standby`); in recovery until [`DbServer::promote`].
    pub standby: bool,
    /// The `(user, group)` the server runs as (`None`: the test's own user).
    run_as: Option<(&'static str, &'static str)>,
}

impl DbServer {
    /// A PostgreSQL primary.
    pub fn postgres(spec: &ServerSpec) -> DbServer {
        let server = DbServer::prepare(Engine::Postgres, spec);
        let data = server.data();
        server.run_as_server(Command::new(format!("{PG_BIN}/initdb")).args([
            "-D",
            data.to_str().unwrap(),
            "-N",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=reject",
            "--no-instructions",
        ]));
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\nlocal replication all trust\nhostssl {DATABASE} {PROBE_USER} 127.0.0.0/8 scram-sha-256\n"
            ),
        )
        .unwrap();
        let mut server = server;
        server.start_postgres(spec);
        server.psql(
            "postgres",
            &format!("CREATE ROLE {PROBE_USER} LOGIN PASSWORD '{PROBE_PASSWORD}'"),
        );
        server.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        server.psql(
            DATABASE,
            &format!(
                "CREATE TABLE {HEARTBEAT_TABLE} (writer varchar(200) PRIMARY KEY, written_at timestamptz NOT NULL); \
                 GRANT SELECT, INSERT, UPDATE ON {HEARTBEAT_TABLE} TO {PROBE_USER};"
            ),
        );
        server
    }

    /// A PostgreSQL standby of `primary` (`pg_basebackup -R` over the primary's Unix socket; read-only
    /// and streaming until promoted).
    pub fn postgres_standby(primary: &DbServer, spec: &ServerSpec) -> DbServer {
        assert_eq!(primary.engine, Engine::Postgres);
        let mut server = DbServer::prepare(Engine::Postgres, spec);
        let data = server.data();
        server.run_as_server(Command::new(format!("{PG_BIN}/pg_basebackup")).args([
            "-h",
            primary.socket_dir().to_str().unwrap(),
            "-p",
            &primary.address.port().to_string(),
            "-U",
            "postgres",
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]));
        server.standby = true;
        server.start_postgres(spec);
        server
    }

    /// A MariaDB server; with `read_only`, started with `--read-only --innodb-read-only`.
    pub fn mariadb(spec: &ServerSpec, read_only: bool) -> DbServer {
        let mut server = DbServer::prepare(Engine::MariaDb, spec);
        let data = server.data();
        let mut install = Command::new("mariadb-install-db");
        install.args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        install.arg(format!("--datadir={}", data.display()));
        if let Some((user, _)) = server.run_as {
            install.arg(format!("--user={user}"));
        }
        install.args([
            "--innodb-buffer-pool-size=16M",
            "--innodb-flush-method=nosync",
            "--innodb-use-native-aio=0",
        ]);
        let log = server.dir.path().join("install.log");
        // Seen once with many servers starting at once on 2 cores: mariadb-install-db exiting 1 with
        // nothing in its log. A second try on a fresh data directory; the first log is kept in the
        // test's output.
        if !spawn(&mut install, &log).wait().unwrap().success() {
            eprintln!("mariadb-install-db failed; trying once more: {}", tail(&log));
            std::fs::remove_dir_all(&data).unwrap();
            std::fs::create_dir(&data).unwrap();
            set_mode(&data, 0o700);
            if let Some((user, group)) = server.run_as {
                chown(&data, user, group);
            }
            run(&mut install, &log);
        }
        // The schema, written before the server listens (a read-only server could not take it):
        // `--bootstrap` runs without the grant tables until FLUSH PRIVILEGES loads them.
        let setup = format!(
            "FLUSH PRIVILEGES;\n\
             CREATE USER '{PROBE_USER}'@'%' IDENTIFIED BY '{PROBE_PASSWORD}' REQUIRE SSL;\n\
             CREATE DATABASE {DATABASE};\n\
             CREATE TABLE {DATABASE}.{HEARTBEAT_TABLE} (writer varchar(200) PRIMARY KEY, written_at timestamp(6) NOT NULL);\n\
             GRANT SELECT, INSERT, UPDATE ON {DATABASE}.{HEARTBEAT_TABLE} TO '{PROBE_USER}'@'%';\n"
        );
        let mut bootstrap = server.mariadbd_command(spec, false);
        bootstrap.arg("--bootstrap");
        let log = server.dir.path().join("bootstrap.log");
        let status = bootstrap
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(setup.as_bytes())?;
                child.wait()
            })
            .unwrap();
        assert!(
            status.success(),
            "mariadbd --bootstrap failed: {}{}",
            tail(&log),
            tail(&server.log())
        );
        let mut command = server.mariadbd_command(spec, read_only);
        let log = server.log();
        server.child = Some(spawn(&mut command, &log));
        server.wait_ready();
        server
    }

    /// The PostgreSQL standby becomes a primary (`pg_promote`), waiting until it takes writes.
    pub fn promote(&mut self) {
        assert!(
            self.engine == Engine::Postgres && self.standby,
            "promote: not a PostgreSQL standby"
        );
        self.psql("postgres", "SELECT pg_promote(true, 60)");
        let started = Instant::now();
        while self.psql("postgres", "SELECT pg_is_in_recovery()").trim() != "f" {
            assert!(
                started.elapsed() < READY,
                "the standby did not leave recovery: {}",
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.standby = false;
    }

    /// MariaDB: `SET GLOBAL read_only`.
    pub fn set_read_only(&self, read_only: bool) {
        assert_eq!(self.engine, Engine::MariaDb, "set_read_only is MariaDB's");
        self.mariadb_sql(&format!(
            "SET GLOBAL read_only = {}",
            if read_only { "ON" } else { "OFF" }
        ));
    }

    /// The `writer` of every heartbeat row, sorted.
    pub fn heartbeat_rows(&self) -> Vec<String> {
        let sql = format!("SELECT writer FROM {HEARTBEAT_TABLE} ORDER BY writer");
        let out = match self.engine {
            Engine::Postgres => self.psql(DATABASE, &sql),
            Engine::MariaDb => self.mariadb_sql(&format!("USE {DATABASE}; {sql}")),
        };
        out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// Runs `sql` on PostgreSQL as the superuser (Unix socket) and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        assert_eq!(self.engine, Engine::Postgres);
        output(
            Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
                .arg(self.socket_dir())
                .args(["-p", &self.address.port().to_string(), "-d", database, "-c", sql]),
        )
    }

    /// Runs `sql` on MariaDB as root (Unix socket) and returns its tab-separated output.
    pub fn mariadb_sql(&self, sql: &str) -> String {
        assert_eq!(self.engine, Engine::MariaDb);
        output(
            Command::new("mariadb")
                .args(["--no-defaults", "-u", "root", "-N", "-B"])
                .arg(format!("--socket={}", self.socket_dir().join("mysqld.sock").display()))
                .args(["-e", sql]),
        )
    }

    /// Kills the server and waits for it (also done on drop, which then removes its data).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn prepare(engine: Engine, spec: &ServerSpec) -> DbServer {
        let dir = tempfile::tempdir().unwrap();
        let run_as = nix::unistd::geteuid().is_root().then_some(match engine {
            Engine::Postgres => ("postgres", "postgres"),
            Engine::MariaDb => ("nobody", "nogroup"),
        });
        // The server's user must reach its files through the directory (0700 from tempdir).
        set_mode(dir.path(), 0o755);
        let (cert, key) = spec.ca.issue(&spec.tls_names);
        for (name, text, mode) in [("server.crt", &cert, 0o644), ("server.key", &key, 0o600)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            set_mode(&path, mode);
        }
        std::fs::write(dir.path().join("server.log"), "").unwrap();
        for sub in ["data", "sock"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            set_mode(&dir.path().join(sub), 0o700);
        }
        let server = DbServer {
            engine,
            child: None,
            dir,
            address: SocketAddr::from((spec.ip, spec.port)),
            standby: false,
            run_as,
        };
        if let Some((user, group)) = run_as {
            for name in ["server.crt", "server.key", "server.log", "data", "sock"] {
                chown(&server.dir.path().join(name), user, group);
            }
        }
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Runs a helper program (initdb, pg_basebackup) as the server's user, to completion.
    fn run_as_server(&self, command: &mut Command) {
        let mut wrapped = self.as_server_user(command, true);
        run(&mut wrapped, &self.dir.path().join("setup.log"));
    }

    /// `command` under setpriv: as the server's user when root, with the death signal when `pdeathsig`.
    fn as_server_user(&self, command: &Command, pdeathsig: bool) -> Command {
        let mut wrapped = Command::new("setpriv");
        if pdeathsig {
            wrapped.args(["--pdeathsig", "KILL"]);
        }
        if let Some((user, group)) = self.run_as {
            wrapped.args(["--reuid", user, "--regid", group, "--clear-groups"]);
        }
        wrapped.arg("--").arg(command.get_program()).args(command.get_args());
        wrapped
    }

    fn start_postgres(&mut self, spec: &ServerSpec) {
        let dir = self.dir.path();
        let settings = [
            format!("listen_addresses={}", spec.ip),
            format!("port={}", spec.port),
            format!("unix_socket_directories={}", self.socket_dir().display()),
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", dir.join("server.crt").display()),
            format!("ssl_key_file={}", dir.join("server.key").display()),
            "password_encryption=scram-sha-256".to_owned(),
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "shared_buffers=16MB".to_owned(),
            "max_connections=20".to_owned(),
            "max_wal_senders=4".to_owned(),
            "wal_level=replica".to_owned(),
            "hot_standby=on".to_owned(),
            "wal_receiver_status_interval=1".to_owned(),
        ];
        let mut command = Command::new(format!("{PG_BIN}/postgres"));
        command.arg("-D").arg(self.data());
        for s in &settings {
            command.args(["-c", s]);
        }
        let mut wrapped = self.as_server_user(&command, true);
        let log = self.log();
        self.child = Some(spawn(&mut wrapped, &log));
        self.wait_ready();
    }

    fn mariadbd_command(&self, spec: &ServerSpec, read_only: bool) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new("mariadbd");
        command.arg("--no-defaults");
        command.arg(format!("--datadir={}", self.data().display()));
        command.arg(format!("--socket={}", self.socket_dir().join("mysqld.sock").display()));
        command.arg(format!("--pid-file={}", self.socket_dir().join("mysqld.pid").display()));
        command.arg(format!("--bind-address={}", spec.ip));
        command.arg(format!("--port={}", spec.port));
        command.arg(format!("--ssl-cert={}", dir.join("server.crt").display()));
        command.arg(format!("--ssl-key={}", dir.join("server.key").display()));
        command.arg(format!("--log-error={}", self.log().display()));
        if let Some((user, _)) = self.run_as {
            command.arg(format!("--user={user}"));
        }
        command.args([
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-method=nosync",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-innodb-doublewrite",
            "--performance-schema=OFF",
            // Linux AIO contexts are a machine-wide limit (fs.aio-max-nr) that many servers share.
            "--innodb-use-native-aio=0",
        ]);
        if read_only {
            command.args(["--read-only", "--innodb-read-only"]);
        }
        // mariadbd changes its own user (`--user`) after opening its files; the death signal is set by
        // setpriv without a uid change, so it holds.
        let mut wrapped = Command::new("setpriv");
        wrapped.args(["--pdeathsig", "KILL", "--"]);
        wrapped.arg(command.get_program()).args(command.get_args());
        wrapped
    }

    /// Until the server answers on its Unix socket (bounded by [`READY`]).
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let ready = match self.engine {
                Engine::Postgres => Command::new(format!("{PG_BIN}/pg_isready"))
                    .arg("-q")
                    .arg("-h")
                    .arg(self.socket_dir())
                    .args(["-p", &self.address.port().to_string()])
                    .status()
                    .is_ok_and(|s| s.success()),
                Engine::MariaDb => Command::new("mariadb")
                    .args(["--no-defaults", "-u", "root"])
                    .arg(format!("--socket={}", self.socket_dir().join("mysqld.sock").display()))
                    .args(["-e", "SELECT 1"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            };
            if ready {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "{:?} server exited ({status}) before accepting connections: {}",
                    self.engine,
                    tail(&self.log())
                );
            }
            assert!(
                started.elapsed() < READY,
                "{:?} server not accepting connections after {READY:?}: {}",
                self.engine,
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, user: &str, group: &str) {
    let uid = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap_or_else(|| panic!("no user {user}"))
        .uid;
    let gid = nix::unistd::Group::from_name(group)
        .unwrap()
        .unwrap_or_else(|| panic!("no group {group}"))
        .gid;
    std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())).unwrap();
}

fn spawn(command: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::options().create(true).append(true).open(log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e} (run scripts/db-deps)", command.get_program()))
}

/// Runs `command` to completion, its output in `log`; panics with the log's tail when it fails.
fn run(command: &mut Command, log: &Path) {
    let status = spawn(command, log).wait().unwrap();
    assert!(
        status.success(),
        "{:?} failed ({status}): {}",
        command.get_program(),
        tail(log)
    );
}

fn output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    assert!(
        out.status.success(),
        "{:?} {:?} failed: {}",
        command.get_program(),
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The last 60 lines of a log.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "\n--- {} ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(60)..].join("\n")
    )
}
