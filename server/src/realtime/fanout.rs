//! The fan-out: a few threads (one per core, at most [`MAX_THREADS`]) that
//! write each room frame to every connection of the room.
//!
//! Each connection belongs to one thread (by its number), so a big room's
//! writes are spread over every core. A room sends its commands always
//! under the room's lock: a connection's join, leave or resync to that
//! connection's thread, and each frame to every thread. So each thread sees
//! a room's commands in the room's order, and a connection gets exactly the
//! frames numbered after its join (or its resync), in order. The thread hands each frame's bytes (framed once
//! for everyone) to every [`Outbox`], which writes them straight into the
//! socket: one system call per client per frame, and no task woken unless
//! the socket could not take the frame at once. Writes never block, so a
//! slow client never holds the thread up.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;

use super::outbox::Outbox;

/// Fan-out threads at most.
pub const MAX_THREADS: usize = 4;

/// What a room asks of its fan-out thread.
#[derive(Debug)]
pub enum Command {
    /// A connection joins: it gets the frames sent after this.
    Join {
        /// The room.
        room: u64,
        /// The connection.
        conn: u64,
        /// Its outgoing side.
        outbox: Arc<Outbox>,
    },
    /// A connection leaves.
    Leave {
        /// The room.
        room: u64,
        /// The connection.
        conn: u64,
    },
    /// A frame for everyone in the room.
    Frame {
        /// The room.
        room: u64,
        /// The frame's bytes, as written to every socket.
        bytes: Bytes,
        /// A rules change.
        settings: bool,
    },
    /// A lagged connection's resync and the frames after it (to the
    /// connection's thread).
    Resume {
        /// The connection's outgoing side.
        outbox: Arc<Outbox>,
        /// The resync, then the room's frames sent since its snapshot.
        frames: Vec<Bytes>,
    },
}

/// The connections of one room, in a thread.
#[derive(Default)]
struct Members {
    list: Vec<(u64, Arc<Outbox>)>,
    /// Connection → position in `list`.
    at: HashMap<u64, usize>,
}

fn run(rx: mpsc::Receiver<Command>) {
    let mut rooms: HashMap<u64, Members> = HashMap::new();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Command::Join { room, conn, outbox } => {
                let m = rooms.entry(room).or_default();
                m.at.insert(conn, m.list.len());
                m.list.push((conn, outbox));
            }
            Command::Leave { room, conn } => {
                let Some(m) = rooms.get_mut(&room) else {
                    continue;
                };
                if let Some(i) = m.at.remove(&conn) {
                    m.list.swap_remove(i);
                    if let Some((moved, _)) = m.list.get(i) {
                        m.at.insert(*moved, i);
                    }
                }
                if m.list.is_empty() {
                    rooms.remove(&room);
                }
            }
            Command::Frame {
                room,
                bytes,
                settings,
            } => {
                if let Some(m) = rooms.get(&room) {
                    for (_, outbox) in &m.list {
                        outbox.offer(&bytes, settings);
                    }
                }
            }
            Command::Resume { outbox, frames } => outbox.resume(&frames),
        }
    }
}

/// The fan-out threads of a node; they end when every sender is dropped.
#[derive(Debug)]
pub struct Fanout {
    threads: Vec<mpsc::Sender<Command>>,
}

/// The fan-out threads a node starts: one per core, at most
/// [`MAX_THREADS`].
pub fn thread_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

impl Fanout {
    /// Starts [`thread_count`] threads.
    pub fn start() -> Fanout {
        let threads = (0..thread_count())
            .filter_map(|k| {
                let (tx, rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("onair-fanout-{k}"))
                    .spawn(move || run(rx))
                    .map_err(|e| tracing::error!(error = %e, "cannot start a fan-out thread"))
                    .ok()
                    .map(|_| tx)
            })
            .collect();
        Fanout { threads }
    }

    /// Senders to every thread (none if no thread could start).
    pub fn senders(&self) -> Vec<mpsc::Sender<Command>> {
        self.threads.clone()
    }
}
