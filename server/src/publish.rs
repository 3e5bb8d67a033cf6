//! `onair publish`: sends a media file over the ingest protocol exactly as the
//! studio page does: live Matroska chunks at a fixed interval, numbered, acked,
//! resent after a reconnect. Streams the server takes are copied, others are
//! encoded first (see [`crate::media::remux`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use app::protocol::close::CloseReason;
use app::protocol::ingest::{
    encode_chunk, ClientMessage, IngestLimits, ServerMessage, PROTOCOL_VERSION,
};
use bytes::Bytes;
use clap::Args;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::media::remux::{RemuxError, Remuxer, StreamPlan};

/// Options of `onair publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The Onair server, e.g. `http://127.0.0.1:3000`.
    #[arg(long, env = "ONAIR_SERVER", default_value = "http://127.0.0.1:3000")]
    pub server: String,
    /// The stream id.
    #[arg(long)]
    pub stream: String,
    /// The stream's ingest token. Prefer the environment variable to the flag.
    #[arg(long, env = "ONAIR_INGEST_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Send at the media's own pace (as a live camera would) instead of as fast as acks allow.
    #[arg(long)]
    pub realtime: bool,
    /// Chunk interval in milliseconds (MediaRecorder's timeslice).
    #[arg(long, default_value_t = 500)]
    pub chunk_ms: u64,
    /// Print a progress line to stderr this often, in milliseconds of wall
    /// time (0: never).
    #[arg(long, default_value_t = 5000)]
    pub progress_ms: u64,
    /// Any file FFmpeg can read. Video in H.264, VP8 or VP9 and audio in Opus
    /// or AAC are copied into Matroska; other codecs are encoded to H.264 and
    /// Opus (AAC if this FFmpeg has no libopus) first.
    pub file: PathBuf,
}

/// Publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The file could not be read or remuxed.
    #[error(transparent)]
    Remux(#[from] RemuxError),
    /// `--server` is not an http:// URL.
    #[error("--server {0:?}: expected http://host:port")]
    Server(String),
    /// The server refused (close code and its reason).
    #[error("the server refused ({code} {reason}): {message}")]
    Refused {
        /// WebSocket close code.
        code: u16,
        /// Machine-readable reason.
        reason: String,
        /// The server's message.
        message: String,
    },
    /// The connection failed and could not be re-established.
    #[error("connection failed: {0}")]
    Connection(String),
}

/// What was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Chunks sent (and acked).
    pub chunks: u64,
    /// Bytes of media sent.
    pub bytes: u64,
    /// Media duration, microseconds.
    pub media_us: i64,
    /// Reconnects needed.
    pub reconnects: u32,
    /// The streams sent, and whether each was copied or encoded.
    pub streams: Vec<StreamPlan>,
}

/// What the remuxing thread hands to the sender.
enum Remuxed {
    /// The streams and the input's duration (µs, if known), once, before any chunk.
    Plan(Vec<StreamPlan>, Option<i64>),
    /// A chunk and the media time it reaches (µs).
    Chunk(Bytes, i64),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Answer {
    Msg(ServerMessage),
    Closed(Option<(u16, CloseReason)>),
}

async fn recv(ws: &mut Ws) -> Answer {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(&t) {
                Ok(m) => return Answer::Msg(m),
                Err(_) => continue,
            },
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                let reason = serde_json::from_str(&f.reason).unwrap_or(CloseReason {
                    code: "closed".into(),
                    message: f.reason.to_string(),
                });
                return Answer::Closed(Some((u16::from(f.code), reason)));
            }
            Ok(Some(Ok(_))) => continue,
            _ => return Answer::Closed(None),
        }
    }
}

fn ws_url(server: &str, stream: &str) -> Result<String, PublishError> {
    let base = server.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| PublishError::Server(server.into()))?;
    Ok(format!("ws://{rest}/api/v1/streams/{stream}/ingest"))
}

/// Connects and says hello; returns the socket and the server's next sequence number.
async fn attach(
    url: &str,
    token: &str,
    capture_start_ms: i64,
    resume_after: Option<u64>,
) -> Result<(Ws, u64, IngestLimits), PublishError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| PublishError::Connection(e.to_string()))?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| PublishError::Connection("the token is not a valid header value".into()))?;
    req.headers_mut().insert("authorization", auth);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| PublishError::Connection(e.to_string()))?;
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        token: None,
        mime_type: "video/x-matroska".into(),
        capture_start_ms,
        resume_after,
        new_period: false,
    };
    let text =
        serde_json::to_string(&hello).map_err(|e| PublishError::Connection(e.to_string()))?;
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| PublishError::Connection(e.to_string()))?;
    match recv(&mut ws).await {
        Answer::Msg(ServerMessage::Ready {
            next_seq, limits, ..
        }) => Ok((ws, next_seq, limits)),
        Answer::Closed(Some((code, r))) => Err(PublishError::Refused {
            code,
            reason: r.code,
            message: r.message,
        }),
        Answer::Msg(other) => Err(PublishError::Connection(format!(
            "unexpected answer {other:?}"
        ))),
        Answer::Closed(None) => Err(PublishError::Connection(
            "the server closed the connection".into(),
        )),
    }
}

/// Publishes `args.file` and returns when the server says the stream has ended.
pub async fn run(args: PublishArgs) -> Result<PublishReport, PublishError> {
    let url = ws_url(&args.server, &args.stream)?;
    let capture_start_ms =
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000;

    // Remux on a blocking thread; pace by media time when --realtime.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Remuxed, RemuxError>>(16);
    let file = args.file.clone();
    let (chunk_ms, realtime) = (args.chunk_ms, args.realtime);
    tokio::task::spawn_blocking(move || {
        let mut remuxer = match Remuxer::open(&file, chunk_ms) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if tx
            .blocking_send(Ok(Remuxed::Plan(
                remuxer.plan().to_vec(),
                remuxer.duration_us(),
            )))
            .is_err()
        {
            return;
        }
        let start = Instant::now();
        loop {
            match remuxer.next_chunk() {
                Ok(Some(chunk)) => {
                    if realtime {
                        let due = Duration::from_micros(chunk.media_us.max(0) as u64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                    if tx
                        .blocking_send(Ok(Remuxed::Chunk(chunk.bytes, chunk.media_us)))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    let mut report = PublishReport {
        chunks: 0,
        bytes: 0,
        media_us: 0,
        reconnects: 0,
        streams: Vec::new(),
    };
    let (mut ws, mut next_seq, limits) = attach(&url, &args.token, capture_start_ms, None).await?;
    // Never faster than 90% of the server's ingest limit (it refuses a
    // sender that goes over): a file is sent as fast as that allows.
    let pace_bps = (limits.max_bitrate as f64 * 0.9).max(8_000.0);
    let sending_since = Instant::now();
    let mut sent_bits = 0f64;
    let mut unacked: VecDeque<(u64, Bytes)> = VecDeque::new();
    let mut last_acked: Option<u64> = None;
    let mut input_done = false;
    let mut total_us = None;
    let progress_every = Duration::from_millis(args.progress_ms);
    let mut progress_at = Instant::now() + progress_every;
    loop {
        if args.progress_ms > 0 && Instant::now() >= progress_at {
            progress_at = Instant::now() + progress_every;
            eprintln!("{}", progress_line(&report, total_us));
        }
        // Keep a bounded number of chunks in flight.
        let next = if !input_done && unacked.len() < 8 {
            rx.recv().await
        } else {
            None
        };
        match next {
            Some(Ok(Remuxed::Plan(streams, duration_us))) => {
                report.streams = streams;
                total_us = duration_us;
            }
            Some(Ok(Remuxed::Chunk(bytes, media_us))) => {
                sent_bits += (bytes.len() as f64 + 8.0) * 8.0;
                let due = Duration::from_secs_f64(sent_bits / pace_bps);
                if let Some(wait) = due.checked_sub(sending_since.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                report.bytes += bytes.len() as u64;
                report.media_us = media_us;
                let seq = next_seq;
                next_seq += 1;
                unacked.push_back((seq, bytes.clone()));
                if ws
                    .send(Message::Binary(encode_chunk(seq, &bytes).into()))
                    .await
                    .is_err()
                {
                    (ws, _) = reconnect(
                        &url,
                        &args.token,
                        capture_start_ms,
                        last_acked,
                        &mut unacked,
                        &mut report,
                    )
                    .await?;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None if !input_done && unacked.len() < 8 => input_done = true,
            None => {}
        }
        if input_done && unacked.is_empty() {
            break;
        }
        // Read acks (wait for one when the window is full or the input is done).
        if unacked.len() >= 8 || input_done {
            match recv(&mut ws).await {
                Answer::Msg(ServerMessage::Ack { seq }) => {
                    last_acked = Some(seq);
                    while unacked.front().is_some_and(|(s, _)| *s <= seq) {
                        unacked.pop_front();
                        report.chunks += 1;
                    }
                }
                Answer::Msg(_) => {}
                Answer::Closed(Some((code, r))) if code != 1000 && code != 4500 => {
                    return Err(PublishError::Refused {
                        code,
                        reason: r.code,
                        message: r.message,
                    });
                }
                Answer::Closed(_) => {
                    (ws, _) = reconnect(
                        &url,
                        &args.token,
                        capture_start_ms,
                        last_acked,
                        &mut unacked,
                        &mut report,
                    )
                    .await?;
                }
            }
        }
    }
    let end = serde_json::to_string(&ClientMessage::End)
        .map_err(|e| PublishError::Connection(e.to_string()))?;
    ws.send(Message::Text(end.into()))
        .await
        .map_err(|e| PublishError::Connection(e.to_string()))?;
    loop {
        match recv(&mut ws).await {
            Answer::Msg(ServerMessage::Ended) => return Ok(report),
            Answer::Msg(_) => continue,
            Answer::Closed(Some((code, r))) => {
                return Err(PublishError::Refused {
                    code,
                    reason: r.code,
                    message: r.message,
                })
            }
            Answer::Closed(None) => {
                return Err(PublishError::Connection(
                    "closed before the stream ended".into(),
                ))
            }
        }
    }
}

/// One progress line: media time sent, of how much, bytes, acked chunks and
/// reconnects, e.g. `sent 0:12.0 of 1:30.0 (13%), 2.4 MB, 24 chunks acked, 0 reconnects`.
fn progress_line(report: &PublishReport, total_us: Option<i64>) -> String {
    let clock = |us: i64| {
        let tenths = us.max(0) / 100_000;
        format!("{}:{:02}.{}", tenths / 600, (tenths / 10) % 60, tenths % 10)
    };
    let mut line = format!("sent {}", clock(report.media_us));
    if let Some(total) = total_us.filter(|t| *t > 0) {
        let percent = (i128::from(report.media_us.max(0)) * 100 / i128::from(total)).min(100);
        line += &format!(" of {} ({percent}%)", clock(total));
    }
    let kb = report.bytes / 1000;
    let size = if kb >= 1000 {
        format!("{}.{} MB", kb / 1000, (kb % 1000) / 100)
    } else {
        format!("{kb} KB")
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    format!(
        "{line}, {size}, {} chunk{} acked, {} reconnect{}",
        report.chunks,
        plural(report.chunks),
        report.reconnects,
        plural(u64::from(report.reconnects))
    )
}

/// Reconnects with backoff and re-sends every chunk the server does not have.
async fn reconnect(
    url: &str,
    token: &str,
    capture_start_ms: i64,
    last_acked: Option<u64>,
    unacked: &mut VecDeque<(u64, Bytes)>,
    report: &mut PublishReport,
) -> Result<(Ws, u64), PublishError> {
    let mut delay = Duration::from_millis(200);
    for _ in 0..10 {
        tokio::time::sleep(delay).await;
        report.reconnects += 1;
        match attach(url, token, capture_start_ms, last_acked).await {
            Ok((mut ws, next, _)) => {
                for (seq, bytes) in unacked.iter().filter(|(s, _)| *s >= next) {
                    ws.send(Message::Binary(encode_chunk(*seq, bytes).into()))
                        .await
                        .map_err(|e| PublishError::Connection(e.to_string()))?;
                }
                return Ok((ws, next));
            }
            Err(PublishError::Refused { code: 4009, .. }) | Err(PublishError::Connection(_)) => {
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
    Err(PublishError::Connection(
        "could not reconnect after 10 attempts".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(media_us: i64, bytes: u64, chunks: u64, reconnects: u32) -> PublishReport {
        PublishReport {
            chunks,
            bytes,
            media_us,
            reconnects,
            streams: Vec::new(),
        }
    }

    #[test]
    fn progress_lines_read_like_a_clock() {
        assert_eq!(
            progress_line(&report(12_340_000, 2_412_345, 24, 0), Some(90_000_000)),
            "sent 0:12.3 of 1:30.0 (13%), 2.4 MB, 24 chunks acked, 0 reconnects"
        );
        assert_eq!(
            progress_line(&report(3_725_000_000, 999_999, 1, 1), None),
            "sent 62:05.0, 999 KB, 1 chunk acked, 1 reconnect"
        );
        // A container that understates its duration never reads over 100%.
        assert_eq!(
            progress_line(&report(5_000_000, 0, 0, 2), Some(4_000_000)),
            "sent 0:05.0 of 0:04.0 (100%), 0 KB, 0 chunks acked, 2 reconnects"
        );
        // Hostile extremes do not overflow.
        assert!(
            progress_line(&report(i64::MAX, u64::MAX, u64::MAX, u32::MAX), Some(1))
                .starts_with("sent ")
        );
        assert!(progress_line(&report(i64::MIN, 0, 0, 0), Some(i64::MAX)).contains("(0%)"));
    }
}
