//! The machine's floor for the events bench: the same fan-out with nothing
//! but the kernel's work left. A child process (this bench binary, started
//! again with [`ROLE_ENV`] set) accepts the clients' plain TCP connections,
//! then, for each line it reads on stdin, frames the line once as a
//! WebSocket text frame (the server's own framing) and writes it into every socket with one
//! non-blocking `write`, from as many threads as the server's fan-out has.
//! No HTTP, no upgrade, no database, no rooms, no heartbeats: what the real
//! server's number adds to this one is the server's own cost.

use std::io::{self, BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

use bytes::Bytes;
use onair_server::realtime::{fanout, wire};

/// Set (to the number of clients) in the child process.
pub const ROLE_ENV: &str = "ONAIR_BENCH_BARE_FANOUT";
/// The child's side: prints the listening port, accepts `clients`
/// connections, then writes every stdin line to all of them; returns at the
/// end of stdin.
pub fn serve(clients: usize) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    io::stdout().flush()?;
    let threads = fanout::thread_count();
    let mut shares: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for k in 0..clients {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        shares[k % threads].push(s);
    }
    drop(listener);
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for share in shares {
        let (tx, rx) = mpsc::channel::<Bytes>();
        senders.push(tx);
        handles.push(std::thread::spawn(move || {
            let mut refused = 0u64;
            for frame in rx {
                for mut s in &share {
                    // A socket that cannot take a small frame is a client
                    // far behind; the floor skips it (and says so).
                    if !matches!(s.write(&frame), Ok(n) if n == frame.len()) {
                        refused += 1;
                    }
                }
            }
            refused
        }));
    }
    for line in io::stdin().lock().lines() {
        let frame = wire::text(&line?);
        for tx in &senders {
            let _ = tx.send(frame.clone());
        }
    }
    drop(senders);
    let refused: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    if refused > 0 {
        eprintln!("bare fan-out: {refused} writes not taken whole");
    }
    Ok(())
}
