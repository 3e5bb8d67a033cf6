//! The ingest socket's protocol, sans IO: the server's mirror of the studio's
//! `app::publisher`. [`read_hello`] checks the first message; a [`Receiver`]
//! then turns each later message into a [`Step`] (a chunk to pass on, a
//! resend to skip, a new period, the end) or a [`Refusal`] with its close
//! code. Sequence numbers, duplicates, the byte budget and the new-period
//! rule live here; the socket (`ingest::socket`) does the IO, the database
//! and the pipeline, and passes the time in, so every rule is tested without
//! a socket or a clock.

use std::time::{Duration, Instant};

use app::protocol::ingest::{close, decode_chunk, next_seq, ClientMessage, PROTOCOL_VERSION};

/// A refusal: the close code, the reason's short name and a message for
/// people (sent as the close frame's JSON reason).
pub type Refusal = (u16, &'static str, String);

/// What a valid hello asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The ingest token, if the hello carried one (a bearer header wins).
    pub token: Option<String>,
    /// Wall-clock ms when the publisher's capture started.
    pub capture_start_ms: i64,
    /// The last chunk the publisher knows was acknowledged, when resuming.
    pub resume_after: Option<u64>,
    /// The publisher's recorder restarted: the next chunk starts a container.
    pub new_period: bool,
}

/// A first message as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// Checks the socket's first message: a text hello of this protocol
/// version, with a capture start inside the accepted window around
/// `now_ms`.
pub fn read_hello(first: Incoming<'_>, now_ms: i64) -> Result<Hello, Refusal> {
    let Incoming::Text(text) = first else {
        return Err((
            close::PROTOCOL,
            "protocol",
            "the first message must be a text hello".into(),
        ));
    };
    let msg = serde_json::from_str::<ClientMessage>(text)
        .map_err(|e| (close::BAD_HELLO, "bad_hello", format!("invalid hello: {e}")))?;
    let ClientMessage::Hello {
        version,
        token,
        capture_start_ms,
        resume_after,
        new_period,
        ..
    } = msg
    else {
        return Err((
            close::BAD_HELLO,
            "bad_hello",
            "the first message must be hello".into(),
        ));
    };
    if version != PROTOCOL_VERSION {
        return Err((
            close::BAD_HELLO,
            "bad_hello",
            format!("protocol version {version} is not supported; use {PROTOCOL_VERSION}"),
        ));
    }
    check_capture_start(capture_start_ms, now_ms)?;
    Ok(Hello {
        token,
        capture_start_ms,
        resume_after,
        new_period,
    })
}

/// `capture_start_ms` inside `app::protocol::ingest::check_capture_start`'s
/// window around `now_ms`.
pub fn check_capture_start(capture_start_ms: i64, now_ms: i64) -> Result<(), Refusal> {
    app::protocol::ingest::check_capture_start(capture_start_ms, now_ms)
        .map_err(|m| (close::PROTOCOL, "protocol", m))
}

/// A byte budget: a token bucket that refills at a rate and holds
/// [`Budget::BURST`] of it. Integer arithmetic in byte-microseconds, so no
/// rounding accumulates.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Bytes per second.
    rate: u64,
    /// The bucket's level, in bytes × 10⁶.
    level: u128,
    last: Instant,
}

impl Budget {
    /// The bucket holds two seconds of the rate.
    pub const BURST: Duration = Duration::from_secs(2);

    /// A full bucket for `max_bitrate` bits per second, as of `now`.
    pub fn new(max_bitrate: u64, now: Instant) -> Self {
        let rate = max_bitrate / 8;
        let mut budget = Budget {
            rate,
            level: 0,
            last: now,
        };
        budget.level = budget.capacity();
        budget
    }

    fn capacity(&self) -> u128 {
        u128::from(self.rate) * Self::BURST.as_micros()
    }

    /// Takes `bytes` at `now`; `false` (and nothing taken) when the bucket
    /// does not hold them.
    pub fn take(&mut self, bytes: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_micros();
        self.last = self.last.max(now);
        self.level = self
            .level
            .saturating_add(u128::from(self.rate).saturating_mul(elapsed))
            .min(self.capacity());
        let cost = u128::from(bytes) * 1_000_000;
        match self.level.checked_sub(cost) {
            Some(rest) => {
                self.level = rest;
                true
            }
            None => false,
        }
    }
}

/// What one message after the hello means.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A resend of a chunk the server already has: skip it (no ack).
    Duplicate,
    /// The next chunk: pass `data` on, then store `next` and ack `seq`.
    Chunk {
        /// Its sequence number.
        seq: u64,
        /// The sequence number expected after it.
        next: u64,
        /// Its container bytes.
        data: &'a [u8],
        /// It begins a new container after media already reached the
        /// pipeline, unannounced: start a new period before it.
        new_period: bool,
    },
    /// The publisher announced a new period: the next chunk starts a
    /// container.
    NewPeriod {
        /// Wall-clock ms when the new capture started.
        capture_start_ms: i64,
    },
    /// The publisher ended the stream.
    End,
    /// Nothing to do (ping or pong, answered by the library).
    Nothing,
}

/// One connection's receiving side, after a valid hello.
#[derive(Debug, Clone)]
pub struct Receiver {
    budget: Budget,
    max_bitrate: u64,
    /// A period was just announced: the next container is its own, not an
    /// unannounced restart.
    marked: bool,
}

impl Receiver {
    /// A receiver with a full byte budget for `max_bitrate` at `now`.
    /// `marked`: a new period was announced (in the hello) and not yet fed.
    pub fn new(max_bitrate: u64, marked: bool, now: Instant) -> Self {
        Receiver {
            budget: Budget::new(max_bitrate, now),
            max_bitrate,
            marked,
        }
    }

    /// A binary message at `now`. `expected` is the stream's next sequence
    /// number (kept by the session across reconnects) and `received` whether
    /// any media reached the pipeline in this session.
    pub fn binary<'a>(
        &mut self,
        frame: &'a [u8],
        expected: u64,
        received: bool,
        now: Instant,
    ) -> Result<Step<'a>, Refusal> {
        let Some((seq, data)) = decode_chunk(frame) else {
            return Err((
                close::PROTOCOL,
                "protocol",
                "a binary message is shorter than its 8-byte header".into(),
            ));
        };
        if seq < expected {
            return Ok(Step::Duplicate);
        }
        if seq > expected {
            return Err((
                close::PROTOCOL,
                "protocol",
                format!("chunk {seq} arrived, expected {expected}"),
            ));
        }
        let Some(next) = next_seq(seq) else {
            return Err((
                close::PROTOCOL,
                "protocol",
                format!("sequence numbers end at {}", app::protocol::ingest::MAX_SEQ),
            ));
        };
        let wire = u64::try_from(frame.len()).unwrap_or(u64::MAX);
        if !self.budget.take(wire, now) {
            return Err((
                close::RATE_LIMITED,
                "rate_limited",
                format!("ingest exceeds {} bit/s", self.max_bitrate),
            ));
        }
        let new_period = !self.marked && received && super::starts_container(data);
        self.marked = false;
        Ok(Step::Chunk {
            seq,
            next,
            data,
            new_period,
        })
    }

    /// A text message at `now_ms` (wall clock).
    pub fn text(&mut self, text: &str, now_ms: i64) -> Result<Step<'static>, Refusal> {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::End) => Ok(Step::End),
            Ok(ClientMessage::NewPeriod { capture_start_ms }) => {
                check_capture_start(capture_start_ms, now_ms)?;
                self.marked = true;
                Ok(Step::NewPeriod { capture_start_ms })
            }
            Ok(ClientMessage::Hello { .. }) => {
                Err((close::PROTOCOL, "protocol", "hello was already sent".into()))
            }
            Err(e) => Err((close::PROTOCOL, "protocol", format!("unknown message: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_800_000_000_000;

    fn chunk(seq: u64, body: &[u8]) -> Vec<u8> {
        let mut v = seq.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn hello_json(version: u32, capture: i64) -> String {
        format!(
            r#"{{"type":"hello","version":{version},"mime_type":"video/webm","capture_start_ms":{capture}}}"#
        )
    }

    #[test]
    fn a_hello_is_checked_for_kind_version_and_capture_start() {
        let ok = read_hello(
            Incoming::Text(&hello_json(PROTOCOL_VERSION, NOW_MS)),
            NOW_MS,
        );
        assert_eq!(ok.map(|h| h.capture_start_ms), Ok(NOW_MS));
        let binary = read_hello(Incoming::Binary(&[0; 8]), NOW_MS).unwrap_err();
        assert_eq!((binary.0, binary.1), (close::PROTOCOL, "protocol"));
        let garbage = read_hello(Incoming::Text("<b>hi</b>"), NOW_MS).unwrap_err();
        assert_eq!((garbage.0, garbage.1), (close::BAD_HELLO, "bad_hello"));
        let end_first = read_hello(Incoming::Text(r#"{"type":"end"}"#), NOW_MS).unwrap_err();
        assert_eq!(end_first.1, "bad_hello");
        let old = read_hello(
            Incoming::Text(&hello_json(PROTOCOL_VERSION + 1, NOW_MS)),
            NOW_MS,
        )
        .unwrap_err();
        assert!(old.2.contains("not supported"), "{old:?}");
        let ancient =
            read_hello(Incoming::Text(&hello_json(PROTOCOL_VERSION, 5)), NOW_MS).unwrap_err();
        assert_eq!(ancient.1, "protocol");
        let huge = format!(
            r#"{{"type":"hello","version":{PROTOCOL_VERSION},"mime_type":"video/webm","capture_start_ms":99999999999999999999}}"#
        );
        assert_eq!(
            read_hello(Incoming::Text(&huge), NOW_MS).unwrap_err().1,
            "bad_hello"
        );
    }

    #[test]
    fn chunks_are_taken_in_order_resends_are_skipped_and_gaps_refused() {
        let t = Instant::now();
        let mut rx = Receiver::new(8_000_000, false, t);
        let c0 = chunk(0, b"abc");
        assert_eq!(
            rx.binary(&c0, 0, false, t),
            Ok(Step::Chunk {
                seq: 0,
                next: 1,
                data: b"abc",
                new_period: false
            })
        );
        assert_eq!(rx.binary(&c0, 1, true, t), Ok(Step::Duplicate));
        let gap = rx.binary(&chunk(3, b"x"), 1, true, t).unwrap_err();
        assert_eq!(gap.1, "protocol");
        assert!(gap.2.contains("expected 1"), "{gap:?}");
        let short = rx.binary(&[1, 2, 3], 1, true, t).unwrap_err();
        assert_eq!(short.1, "protocol");
        let last = app::protocol::ingest::MAX_SEQ;
        let end = rx.binary(&chunk(last, b"x"), last, true, t).unwrap_err();
        assert!(end.2.contains("sequence numbers end"), "{end:?}");
    }

    #[test]
    fn an_unannounced_container_after_media_starts_a_period_an_announced_one_does_not() {
        let t = Instant::now();
        let webm = [
            0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm',
        ];
        let mut rx = Receiver::new(8_000_000, false, t);
        // The first container of a session is not a new period.
        let bytes = chunk(0, &webm);
        let first = rx.binary(&bytes, 0, false, t);
        assert!(matches!(
            first,
            Ok(Step::Chunk {
                new_period: false,
                ..
            })
        ));
        // The same bytes once media flowed: a restart the client did not announce.
        let bytes = chunk(1, &webm);
        let restart = rx.binary(&bytes, 1, true, t);
        assert!(matches!(
            restart,
            Ok(Step::Chunk {
                new_period: true,
                ..
            })
        ));
        // Announced: the marker is the period, the container is not another.
        let msg = format!(r#"{{"type":"new_period","capture_start_ms":{NOW_MS}}}"#);
        assert_eq!(
            rx.text(&msg, NOW_MS),
            Ok(Step::NewPeriod {
                capture_start_ms: NOW_MS
            })
        );
        let bytes = chunk(2, &webm);
        let announced = rx.binary(&bytes, 2, true, t);
        assert!(matches!(
            announced,
            Ok(Step::Chunk {
                new_period: false,
                ..
            })
        ));
        // A hello that announced the period counts the same way.
        let mut resumed = Receiver::new(8_000_000, true, t);
        let bytes = chunk(7, &webm);
        let after_hello = resumed.binary(&bytes, 7, true, t);
        assert!(matches!(
            after_hello,
            Ok(Step::Chunk {
                new_period: false,
                ..
            })
        ));
    }

    #[test]
    fn the_byte_budget_holds_two_seconds_and_refills_with_time() {
        let t = Instant::now();
        // 80 kbit/s = 10,000 B/s; the bucket holds 20,000 B.
        let mut rx = Receiver::new(80_000, false, t);
        let big = vec![0u8; 9_992]; // 10,000 B on the wire with its header
        assert!(matches!(
            rx.binary(&chunk(0, &big), 0, false, t),
            Ok(Step::Chunk { .. })
        ));
        assert!(matches!(
            rx.binary(&chunk(1, &big), 1, true, t),
            Ok(Step::Chunk { .. })
        ));
        let over = rx.binary(&chunk(2, &big), 2, true, t).unwrap_err();
        assert_eq!((over.0, over.1), (close::RATE_LIMITED, "rate_limited"));
        // One second later the bucket holds 10,000 B again: exactly one more.
        let later = t + Duration::from_secs(1);
        assert!(matches!(
            rx.binary(&chunk(2, &big), 2, true, later),
            Ok(Step::Chunk { .. })
        ));
        assert!(rx.binary(&chunk(3, &big), 3, true, later).is_err());
        // A long pause refills only to the two-second cap.
        let much_later = t + Duration::from_secs(3600);
        let mut sent = 0;
        for seq in 3..10 {
            if rx.binary(&chunk(seq, &big), seq, true, much_later).is_ok() {
                sent += 1;
            }
        }
        assert_eq!(sent, 2);
    }

    #[test]
    fn a_budget_survives_huge_rates_and_a_clock_that_goes_back() {
        let t = Instant::now() + Duration::from_secs(10);
        let mut b = Budget::new(u64::MAX, t);
        assert!(b.take(u64::MAX / 8, t));
        assert!(b.take(1, t - Duration::from_secs(5)));
        let mut zero = Budget::new(0, t);
        assert!(zero.take(0, t));
        assert!(!zero.take(1, t + Duration::from_secs(60)));
    }

    #[test]
    fn text_after_the_hello_is_end_a_period_or_a_refusal() {
        let t = Instant::now();
        let mut rx = Receiver::new(8_000_000, false, t);
        assert_eq!(rx.text(r#"{"type":"end"}"#, NOW_MS), Ok(Step::End));
        let again = rx
            .text(&hello_json(PROTOCOL_VERSION, NOW_MS), NOW_MS)
            .unwrap_err();
        assert!(again.2.contains("already sent"));
        assert_eq!(rx.text("{", NOW_MS).unwrap_err().1, "protocol");
        let bad_period = rx
            .text(r#"{"type":"new_period","capture_start_ms":1}"#, NOW_MS)
            .unwrap_err();
        assert_eq!(bad_period.1, "protocol");
    }
}
