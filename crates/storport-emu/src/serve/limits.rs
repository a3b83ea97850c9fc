//! Connection limits of the front ends: how many connections a listener
//! serves, how long a connection may take to log in, and how long it may sit
//! idle.
//!
//! Every connection shares an [`Activity`] with the listener's accept loop:
//! its thread counts what it receives and the requests it is running, and
//! the accept loop ([`Connections::sweep`], every tick) closes the
//! connections that missed a deadline:
//! - a connection that has not completed its handshake (NBD option haggling,
//!   iSCSI login) within [`Limits::handshake_timeout`] of its accept;
//! - a connection that runs no request and has received nothing for
//!   [`Limits::idle_timeout`].
//!
//! A listener at [`Limits::max_connections`] makes room for a new
//! connection by closing the one that has been idle the longest (waiting for
//! its client, running nothing), so idle or stalled connections never lock a
//! new client out. Only when every connection is running a request is the
//! new one closed at once.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default [`Limits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_mins(5);

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; at the limit, the longest-idle one is
    /// closed to make room for a new one.
    pub max_connections: usize,
    /// Time from accept to the end of the handshake (NBD transmission
    /// phase, iSCSI full feature phase).
    pub handshake_timeout: Duration,
    /// Time a connection may run no request and receive nothing; `None`:
    /// no limit.
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// What a connection's thread tells the accept loop about it.
#[derive(Debug, Default)]
pub struct Activity {
    /// Reads that got bytes.
    received: AtomicU64,
    /// Requests running (in the miniport or being answered).
    busy: AtomicU32,
    /// The handshake completed.
    established: AtomicBool,
}

impl Activity {
    /// Bytes arrived from the client.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// The handshake completed: the idle timeout applies from now on.
    pub fn established(&self) {
        self.established.store(true, Ordering::Release);
    }

    /// A request starts running; [`Self::end`] when it is answered.
    pub fn begin(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// A request started with [`Self::begin`] was answered.
    pub fn end(&self) {
        let _ = self
            .busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// [`Self::begin`] now, [`Self::end`] when the guard drops.
    #[must_use]
    pub fn running(&self) -> Running<'_> {
        self.begin();
        Running(self)
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    fn is_established(&self) -> bool {
        self.established.load(Ordering::Acquire)
    }
}

/// A request running on a connection (see [`Activity::running`]).
#[derive(Debug)]
pub struct Running<'a>(&'a Activity);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// One connection as the accept loop sees it.
struct Entry {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    activity: Arc<Activity>,
    accepted: Instant,
    /// When the connection last received something or ran a request.
    last_seen: Instant,
    /// [`Activity::received`] at `last_seen`.
    last_count: u64,
    /// Shut down by the listener; its thread is ending.
    closing: bool,
}

impl Entry {
    fn close(&mut self) {
        self.closing = true;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Brings `last_seen` up to date; `true` when the connection waits for
    /// its client (no request running).
    fn refresh(&mut self, now: Instant) -> bool {
        let count = self.activity.received.load(Ordering::Relaxed);
        let busy = self.activity.is_busy();
        if count != self.last_count || busy {
            self.last_count = count;
            self.last_seen = now;
        }
        !busy
    }
}

/// The connections of one listener.
pub struct Connections {
    limits: Limits,
    entries: Mutex<HashMap<u64, Entry>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a new connection can be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Room {
    /// Below the limit.
    Free,
    /// At the limit; this idle connection was closed to make room.
    Made(Closed),
    /// At the limit, and every connection is running a request.
    Full,
}

/// Why the listener closed a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The reason, a sentence fragment (`"... was closed: {why}"`).
    pub why: String,
}

impl Connections {
    /// No connections yet.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    #[must_use]
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    /// Makes room for a new connection, closing the connection idle the
    /// longest when the listener is at its limit.
    pub fn make_room(&self, now: Instant) -> Room {
        let mut entries = lock(&self.entries);
        let open = entries.values().filter(|e| !e.closing).count();
        if open < self.limits.max_connections {
            return Room::Free;
        }
        let oldest = entries
            .iter_mut()
            .filter(|(_, e)| !e.closing)
            .filter_map(|(&id, entry)| entry.refresh(now).then_some((id, entry.last_seen)))
            .min_by_key(|&(_, seen)| seen);
        let Some(entry) = oldest.and_then(|(id, _)| entries.get_mut(&id)) else {
            return Room::Full;
        };
        entry.close();
        let closed = Closed {
            peer: entry.peer,
            why: format!(
                "the listener is at its limit of {} connections and this one had been idle the longest ({} ms)",
                self.limits.max_connections,
                now.saturating_duration_since(entry.last_seen).as_millis()
            ),
        };
        drop(entries);
        Room::Made(closed)
    }

    /// Registers the connection `id` (`stream` is a clone the listener
    /// keeps to close it).
    pub fn insert(&self, id: u64, stream: TcpStream, activity: Arc<Activity>, now: Instant) {
        let peer = stream.peer_addr().ok();
        lock(&self.entries).insert(
            id,
            Entry {
                stream,
                peer,
                activity,
                accepted: now,
                last_seen: now,
                last_count: 0,
                closing: false,
            },
        );
    }

    /// The connection's thread ended.
    pub fn remove(&self, id: u64) {
        lock(&self.entries).remove(&id);
    }

    /// Closes the connections past a deadline; returns them.
    pub fn sweep(&self, now: Instant) -> Vec<Closed> {
        let mut closed = Vec::new();
        for entry in lock(&self.entries).values_mut().filter(|e| !e.closing) {
            let waiting = entry.refresh(now);
            let why = if entry.activity.is_established() {
                self.limits
                    .idle_timeout
                    .filter(|&limit| {
                        waiting && now.saturating_duration_since(entry.last_seen) > limit
                    })
                    .map(|limit| {
                        format!(
                            "it received nothing and ran no request for the idle timeout of {} ms",
                            limit.as_millis()
                        )
                    })
            } else {
                (now.saturating_duration_since(entry.accepted) > self.limits.handshake_timeout)
                    .then(|| {
                        format!(
                            "it did not complete its handshake within the handshake timeout of {} ms",
                            self.limits.handshake_timeout.as_millis()
                        )
                    })
            };
            if let Some(why) = why {
                entry.close();
                closed.push(Closed {
                    peer: entry.peer,
                    why,
                });
            }
        }
        closed
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        for entry in lock(&self.entries).values_mut() {
            entry.close();
        }
    }

    /// Connections open and not being closed.
    #[must_use]
    pub fn open(&self) -> usize {
        lock(&self.entries).values().filter(|e| !e.closing).count()
    }
}

#[cfg(test)]
mod tests {
    use super::{Activity, Connections, Limits, Room};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn the_longest_idle_connection_makes_room_and_busy_ones_do_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let connections = Connections::new(limits);
        let start = Instant::now();
        let (_a, a) = pair(&listener);
        let (_b, b) = pair(&listener);
        let first = Arc::new(Activity::default());
        let second = Arc::new(Activity::default());
        connections.insert(1, a, Arc::clone(&first), start);
        connections.insert(2, b, Arc::clone(&second), start + Duration::from_millis(5));
        // The first one received something later than the second was accepted.
        first.received();
        let later = start + Duration::from_millis(10);
        assert_eq!(connections.sweep(later), Vec::new());
        let room = connections.make_room(later);
        assert!(matches!(room, Room::Made(_)), "{room:?}");
        assert_eq!(connections.open(), 1, "the second one was closed");
        // Below the limit: nothing to close.
        assert_eq!(connections.make_room(later), Room::Free);
        // Both busy: no room.
        let (_c, c) = pair(&listener);
        let third = Arc::new(Activity::default());
        connections.insert(3, c, Arc::clone(&third), later);
        let _running = first.running();
        let _also = third.running();
        assert_eq!(connections.make_room(later), Room::Full);
    }

    #[test]
    fn deadlines_close_slow_handshakes_and_idle_connections_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = Limits {
            max_connections: 8,
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Some(Duration::from_secs(2)),
        };
        let connections = Connections::new(limits);
        let start = Instant::now();
        let (_a, a) = pair(&listener);
        let (_b, b) = pair(&listener);
        let (_c, c) = pair(&listener);
        let handshaking = Arc::new(Activity::default());
        let idle = Arc::new(Activity::default());
        let busy = Arc::new(Activity::default());
        idle.established();
        busy.established();
        connections.insert(1, a, Arc::clone(&handshaking), start);
        connections.insert(2, b, Arc::clone(&idle), start);
        connections.insert(3, c, Arc::clone(&busy), start);
        let _running = busy.running();
        // Bytes do not extend the handshake deadline.
        handshaking.received();
        assert!(
            connections
                .sweep(start + Duration::from_millis(500))
                .is_empty()
        );
        let closed = connections.sweep(start + Duration::from_millis(1500));
        assert_eq!(closed.len(), 1);
        assert!(closed[0].why.contains("handshake"), "{closed:?}");
        let closed = connections.sweep(start + Duration::from_secs(5));
        assert_eq!(closed.len(), 1, "the idle one only, not the busy one");
        assert!(closed[0].why.contains("idle timeout"), "{closed:?}");
        assert_eq!(connections.open(), 1);
    }
}
