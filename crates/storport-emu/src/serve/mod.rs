//! `storemu serve`: the miniport's disks as network block devices.
//!
//! - [`backend`]: the started adapter and its LUNs; block operations
//!   become SCSI CDBs sent to the miniport as SRBs.
//! - [`nbd`]: an NBD server (fixed newstyle), one export per disk LUN.
//! - [`iscsi`]: an iSCSI target (RFC 7143 subset), one target per adapter.
//! - [`Server`]: listeners and one thread per connection, on blocking
//!   sockets; [`Server::shutdown`] closes every connection and waits for
//!   its thread.
//! - [`limits`]: the connection limit of each listener and the handshake
//!   and idle timeouts of each connection.
//! - [`Adapter`]: loads and starts the driver as `storemu run` does, and
//!   after serving stops it, removes it and unloads it with the leak checks.
//!
//! Addresses default to the loopback interface; another interface is
//! served only when named explicitly.
//!
//! # Using it
//!
//! ```text
//! storemu serve target/vstor/vstor.sys --inf target/vstor/vstor.inf --set DiskCount=dword:2
//! qemu-io -f raw -c "write -P 0x5a 0 1M" -c "read -P 0x5a 0 1M" nbd://127.0.0.1:10809/lun1
//! iscsi-ls -s iscsi://127.0.0.1:3260
//! iscsi-inq iscsi://127.0.0.1:3260/iqn.2026-11.org.storemu:vstor/0
//! ```
//!
//! `cargo make nbd-check` runs qemu-io, qemu-img and fio against every NBD
//! export; `cargo make compliance` runs libiscsi's `iscsi-test-cu` against
//! the iSCSI target and against tgt (`tools/compliance.sh`).
//!
//! # What the bridge decides itself
//!
//! Every CDB runs in the miniport. The bridge only does what a port driver
//! and the disk class driver above it do: map SRB statuses that carry no
//! SCSI status to the CHECK CONDITION an initiator would see (for example
//! `SRB_STATUS_INVALID_LUN` to LOGICAL UNIT NOT SUPPORTED), issue REQUEST
//! SENSE when a CHECK CONDITION comes without autosense data, split READ
//! and WRITE at the adapter's `MaximumTransferLength`, and frame transfers
//! whose iSCSI expected length differs from the CDB's (residuals). A write
//! whose data falls short of the CDB's transfer length runs for the whole
//! blocks that arrived (GOOD, with the residual); data that ends inside a
//! block is refused with CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN
//! COMMAND INFORMATION UNIT and nothing written (the two choices FCP-4
//! gives; a block device cannot write part of a block). NBD requests are
//! checked against the export's size and block alignment before any SRB is
//! sent, as the NBD protocol asks.

pub mod backend;
pub mod command;
pub mod iscsi;
pub mod limits;
pub mod nbd;
pub mod stages;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::machine::loader;
use crate::port::cpu::GateCpu;
use crate::port::{Finding, Port, PortOptions, exports};
use crate::registry::SetSpec;
use crate::setup::RunArgs;
use backend::Backend;
use limits::{Activity, Connections, Limits};

/// Default NBD address (IANA port 10809 on loopback).
pub const DEFAULT_NBD: &str = "127.0.0.1:10809";
/// Default iSCSI address (IANA port 3260 on loopback).
pub const DEFAULT_ISCSI: &str = "127.0.0.1:3260";
/// How often the accept loops look at the stop flag and the connections'
/// deadlines.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// A started adapter with its LUNs, ready to serve.
pub struct Adapter {
    port: Arc<Port>,
    backend: Arc<Backend>,
}

impl Adapter {
    /// Loads the driver, installs it into the emulated registry (from the
    /// INF and `--set` values, as `storemu run` does), runs `DriverEntry`,
    /// starts the adapter and scans its bus. With `echo` the port prints
    /// its log on stderr as it happens.
    ///
    /// # Errors
    ///
    /// A sentence saying what failed; findings recorded so far are in it.
    pub fn start(args: &RunArgs, sets: &[SetSpec], echo: bool) -> Result<Self, String> {
        let bytes = crate::files::read(&args.driver, crate::files::FileKind::DriverImage)
            .map_err(|e| format!("{e}; nothing was served."))?;
        let (registry, service) = crate::setup::prepare_registry(args, sets)?;
        let name = args
            .driver
            .file_name()
            .map_or_else(|| "driver".to_owned(), |n| n.to_string_lossy().into_owned());
        let image = loader::load_named(&name, &bytes, &exports::resolve, args.allow_missing)
            .map_err(|e| format!("{} cannot be loaded: {e}", args.driver.display()))?;
        let entry = image.entry_point().ok_or_else(|| {
            format!(
                "{} has no entry point (DriverEntry); nothing was served.",
                args.driver.display()
            )
        })?;
        let cpu = GateCpu {
            timeout: Duration::from_millis(args.watchdog_ms),
        };
        let options = PortOptions {
            echo,
            ..args.port_options(service)
        };
        let port = Arc::new(Port::new(
            entry,
            Arc::new(cpu),
            options,
            Some(Box::new(image)),
        ));
        port.set_registry(registry);
        port.log(format!("loaded {name}"));
        port.log(crate::setup::pool_log_line(&args.pool));
        let failed = |port: &Port, what: String| {
            let findings: Vec<String> = port.findings().iter().map(ToString::to_string).collect();
            if findings.is_empty() {
                what
            } else {
                format!("{what} Findings: {}", findings.join("; "))
            }
        };
        if let Err(e) = port.driver_entry() {
            port.unload();
            return Err(failed(&port, format!("{e} Nothing was served.")));
        }
        if let Err(e) = port.start() {
            if !port.bugchecked() {
                let _ = port.remove();
            }
            port.unload();
            return Err(failed(&port, format!("{e} Nothing was served.")));
        }
        match Backend::discover(Arc::clone(&port)) {
            Ok(backend) => Ok(Self {
                port,
                backend: Arc::new(backend),
            }),
            Err(e) => {
                let _ = port.stop();
                let _ = port.remove();
                port.unload();
                Err(failed(
                    &port,
                    format!("the bus scan failed: {e} Nothing was served."),
                ))
            }
        }
    }

    /// The back end the front ends share.
    #[must_use]
    pub fn backend(&self) -> Arc<Backend> {
        Arc::clone(&self.backend)
    }

    /// The port.
    #[must_use]
    pub const fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Stops the adapter (`ScsiStopAdapter`), removes it
    /// (`HwFreeAdapterResources`), unloads the driver with the leak checks,
    /// and returns every finding of the run.
    #[must_use]
    pub fn finish(self) -> Vec<Finding> {
        if !self.port.bugchecked() {
            let _ = self.port.stop();
        }
        if !self.port.bugchecked() {
            let _ = self.port.remove();
        }
        self.port.unload();
        self.port.findings()
    }
}

/// Which front ends to run, and where.
#[derive(Clone, Debug, Default)]
pub struct ServeConfig {
    /// NBD listen address.
    pub nbd: Option<SocketAddr>,
    /// iSCSI listen address.
    pub iscsi: Option<SocketAddr>,
    /// The driver's service name, for the iSCSI target name.
    pub service: String,
    /// Connection limits and timeouts of each listener.
    pub limits: Limits,
    /// Log where each NBD request's time goes ([`stages`]) when a
    /// connection ends.
    pub stage_times: bool,
}

/// The listeners and connection threads of one `serve`.
pub struct Server {
    stop: Arc<AtomicBool>,
    panics: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    nbd: Option<SocketAddr>,
    iscsi: Option<SocketAddr>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a front end does with one accepted connection.
type Handler = Arc<dyn Fn(&Backend, TcpStream, &Activity) + Send + Sync>;

impl Server {
    /// Binds the listeners of `config` and starts accepting.
    ///
    /// # Errors
    ///
    /// When an address cannot be bound.
    pub fn start(backend: &Arc<Backend>, config: &ServeConfig) -> std::io::Result<Self> {
        let mut server = Self {
            stop: Arc::new(AtomicBool::new(false)),
            panics: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
            nbd: None,
            iscsi: None,
        };
        if let Some(address) = config.nbd {
            let stage_times = config.stage_times;
            let handler: Handler = Arc::new(
                move |backend: &Backend, mut stream: TcpStream, activity: &Activity| {
                    let ended = nbd::serve_connection(backend, &mut stream, activity, stage_times);
                    if let nbd::Ended::ProtocolError(message) = ended {
                        backend
                            .port()
                            .log(format!("NBD connection closed: {message}"));
                    }
                },
            );
            server.nbd =
                Some(server.listen("NBD", address, config.limits, Arc::clone(backend), handler)?);
        }
        if let Some(address) = config.iscsi {
            let target = iscsi::Target::for_service(if config.service.is_empty() {
                "miniport"
            } else {
                &config.service
            });
            let handler: Handler = Arc::new(
                move |backend: &Backend, mut stream: TcpStream, activity: &Activity| {
                    match iscsi::serve_connection(backend, &target, &mut stream, activity) {
                        iscsi::Ended::ProtocolError(message)
                        | iscsi::Ended::LoginFailed(message) => {
                            backend
                                .port()
                                .log(format!("iSCSI connection closed: {message}"));
                        }
                        iscsi::Ended::Closed => {}
                    }
                },
            );
            server.iscsi = Some(server.listen(
                "iSCSI",
                address,
                config.limits,
                Arc::clone(backend),
                handler,
            )?);
        }
        Ok(server)
    }

    /// The bound NBD address.
    #[must_use]
    pub const fn nbd_address(&self) -> Option<SocketAddr> {
        self.nbd
    }

    /// The bound iSCSI address.
    #[must_use]
    pub const fn iscsi_address(&self) -> Option<SocketAddr> {
        self.iscsi
    }

    fn listen(
        &mut self,
        protocol: &'static str,
        address: SocketAddr,
        limits: Limits,
        backend: Arc<Backend>,
        handler: Handler,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(address)?;
        let bound = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::clone(&self.stop);
        let panics = Arc::clone(&self.panics);
        let connections = Arc::new(Connections::new(limits));
        let accept = std::thread::Builder::new()
            .name(format!("accept {bound}"))
            .spawn(move || {
                let listening = Listening {
                    protocol,
                    listener: &listener,
                    connections: &connections,
                    backend: &backend,
                    handler: &handler,
                };
                listening.run(&stop, &panics);
            })?;
        self.threads.push(accept);
        Ok(bound)
    }

    /// Stops accepting, closes every connection and waits for the
    /// threads; returns how many connection threads panicked (a bug in the
    /// front end: outside input must never panic it).
    #[must_use]
    pub fn shutdown(mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                self.panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.panics.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One listener's accept loop.
struct Listening<'a> {
    protocol: &'static str,
    listener: &'a TcpListener,
    connections: &'a Arc<Connections>,
    backend: &'a Arc<Backend>,
    handler: &'a Handler,
}

impl Listening<'_> {
    fn closed(&self, closed: &limits::Closed) {
        let peer = closed
            .peer
            .map_or_else(String::new, |p| format!(" from {p}"));
        self.backend.port().log(format!(
            "{} connection{peer} closed by the server: {}",
            self.protocol, closed.why
        ));
    }

    /// Accepts connections until `stop`, closing those past their deadlines;
    /// then closes every connection and waits for its thread.
    fn run(&self, stop: &AtomicBool, panics: &AtomicUsize) {
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let (finished, running): (Vec<_>, Vec<_>) =
                workers.into_iter().partition(JoinHandle::is_finished);
            workers = running;
            for worker in finished {
                if worker.join().is_err() {
                    panics.fetch_add(1, Ordering::Relaxed);
                }
            }
            for closed in self.connections.sweep(Instant::now()) {
                self.closed(&closed);
            }
            match self.listener.accept() {
                Ok((stream, _peer)) => {
                    if let Some(worker) = self.serve(stream) {
                        workers.push(worker);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(ACCEPT_POLL);
                }
                Err(_) => std::thread::sleep(ACCEPT_POLL),
            }
        }
        self.connections.close_all();
        for worker in workers {
            if worker.join().is_err() {
                panics.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Starts the thread of a new connection, after making room for it.
    fn serve(&self, stream: TcpStream) -> Option<JoinHandle<()>> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let now = Instant::now();
        match self.connections.make_room(now) {
            limits::Room::Made(closed) => self.closed(&closed),
            limits::Room::Free => {}
            limits::Room::Full => {
                self.backend.port().log(format!(
                    "{} connection refused: all {} connections are running requests",
                    self.protocol,
                    self.connections.limits().max_connections
                ));
                let _ = stream.shutdown(Shutdown::Both);
                return None;
            }
        }
        if stream.set_nonblocking(false).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        }
        let _ = stream.set_nodelay(true);
        let clone = stream.try_clone().ok()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        self.connections
            .insert(id, clone, Arc::clone(&activity), now);
        let backend = Arc::clone(self.backend);
        let handler = Arc::clone(self.handler);
        let registry = Arc::clone(self.connections);
        let spawned = std::thread::Builder::new()
            .name(format!("connection {id}"))
            .spawn(move || {
                handler(&backend, stream, &activity);
                registry.remove(id);
            });
        spawned.map_or_else(
            |_| {
                self.connections.remove(id);
                None
            },
            Some,
        )
    }
}
