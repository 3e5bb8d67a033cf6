//! One RTMP connection, server side, sans-IO.
//!
//! The caller owns the socket and the clock. It feeds received bytes to
//! [`Session::handle_input`], writes [`Session::output`] to the socket (and
//! calls [`Session::consume_output`] for what was written), drains
//! [`Session::poll_event`], and calls [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] is reached. Nothing in here blocks, reads a clock
//! or touches a socket.
//!
//! The publish flow that OBS, FFmpeg and librtmp encoders use:
//!
//! ```text
//! client                                   server (this crate)
//!   handshake C0 C1 C2 ─────────────────►  S0 S1 S2
//!   connect(app, tcUrl) ────────────────►  Window Ack Size, Set Peer Bandwidth,
//!                                          Set Chunk Size 4096,
//!                                          _result(NetConnection.Connect.Success)
//!                                          → Event::Connect
//!   releaseStream(key) ─────────────────►  _result
//!   FCPublish(key) ─────────────────────►  onFCPublish
//!   createStream ───────────────────────►  _result(stream id 1)
//!   publish(key, "live") ───────────────►  → Event::Publish; the caller decides:
//!                                          accept_publish(): StreamBegin,
//!                                            onStatus(NetStream.Publish.Start)
//!                                          reject_publish(code, text):
//!                                            onStatus(level error, code, text)
//!   @setDataFrame(onMetaData, {...}) ───►  → Event::Metadata
//!   audio / video messages ─────────────►  → Event::Audio / Event::Video
//!   FCUnpublish / closeStream /
//!   deleteStream ───────────────────────►  onStatus(NetStream.Unpublish.Success)
//!                                          → Event::Unpublish
//! ```
//!
//! Other commands that carry a transaction id get an `_error`
//! (`NetConnection.Call.Failed`); playing is not supported. Media and metadata
//! are only delivered while a publish is accepted, on its stream; anything
//! sent before (or after a refusal) is dropped, as are empty media messages.
//! The server acknowledges every window of received bytes (the window the
//! client set with Window Acknowledgement Size, else the configured one) and
//! answers PingRequest with PingResponse.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::amf0::{self, Amf0Value, AmfError, AmfLimits};
use crate::chunk::{msg_type, ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, RawMessage};
use crate::flv::{self, FlvAudio, FlvError, FlvVideo};
use crate::handshake::{Handshake, HandshakeError, HandshakeState};
use crate::reader::Reader;
use crate::time::TimestampUnwrapper;

/// Status codes for [`Session::reject_publish`].
pub mod status {
    /// The stream key is wrong or unknown (what OBS and FFmpeg report as such).
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// Publishing is refused for another reason (a second publisher, a limit).
    pub const PUBLISH_DENIED: &str = "NetStream.Publish.Denied";
    /// A generic stream failure (e.g. an unsupported codec after the start).
    pub const STREAM_FAILED: &str = "NetStream.Failed";
}

/// User Control event types (RTMP 1.0 spec, section 7.1.7).
mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Chunk stream ids the server writes on.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_STREAM_COMMAND: u32 = 5;

/// The FourCCs this crate can parse, echoed when a client lists its own in
/// `connect` (Enhanced RTMP).
const KNOWN_FOURCCS: [&str; 6] = ["avc1", "hvc1", "av01", "vp09", "vp08", "vvc1"];

/// Limits and the server's own parameters. Every limit is checked on input
/// from the peer and refused with a typed [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest chunk size the client may set (OBS uses 4096, FFmpeg 4096 or 128).
    pub max_chunk_size: u32,
    /// Largest message, e.g. one video frame.
    pub max_message_size: u32,
    /// Most distinct chunk stream ids in one connection.
    pub max_chunk_streams: usize,
    /// Most bytes held in partly received messages across chunk streams.
    pub max_in_flight_bytes: usize,
    /// Most message streams a client may create (createStream).
    pub max_message_streams: u32,
    /// AMF0 limits for commands and metadata.
    pub amf: AmfLimits,
    /// The handshake (C0, C1, C2: always 3073 bytes) must finish within this
    /// time of [`Session::new`].
    pub handshake_timeout: Duration,
    /// The client must have sent `publish` within this time of [`Session::new`].
    pub publish_timeout: Duration,
    /// Bytes the client may send before a publish is accepted (handshake and
    /// commands; a publish flow takes about 4 KiB).
    pub max_setup_bytes: u64,
    /// The server's own chunk size, announced after `connect`.
    pub out_chunk_size: u32,
    /// The Window Acknowledgement Size and Set Peer Bandwidth the server
    /// sends, and the window it acknowledges until the client sets one.
    pub window_ack_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_chunk_size: 64 * 1024,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_in_flight_bytes: 16 * 1024 * 1024,
            max_message_streams: 8,
            amf: AmfLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(30),
            max_setup_bytes: 1024 * 1024,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
        }
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The handshake is not finished.
    Handshake(HandshakeState),
    /// Handshake done; waiting for `connect`.
    AwaitingConnect,
    /// Connected; no publish in progress.
    Connected,
    /// `publish` received ([`Event::Publish`]); waiting for
    /// [`Session::accept_publish`] or [`Session::reject_publish`].
    PublishRequested,
    /// Publishing: media is delivered.
    Publishing,
    /// A fatal error happened; the connection should be closed.
    Failed,
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `connect` was answered with success.
    Connect {
        app: String,
        tc_url: Option<String>,
        /// The encoder's `flashVer`, e.g. `FMLE/3.0 (compatible; obs-studio/30.1)`.
        flash_ver: Option<String>,
    },
    /// The client asks to publish; answer with [`Session::accept_publish`] or
    /// [`Session::reject_publish`]. The key is the publishing name exactly as
    /// sent (it may carry a `?query`).
    Publish {
        stream_key: String,
        /// `live`, `record` or `append` (as sent; `live` when absent).
        publish_type: String,
        stream_id: u32,
    },
    /// `@setDataFrame("onMetaData", …)` or `onMetaData(…)`: the properties of
    /// the object or ECMA array.
    Metadata(Vec<(String, Amf0Value)>),
    Video(FlvVideo),
    Audio(FlvAudio),
    /// The publish ended (FCUnpublish, closeStream or deleteStream).
    Unpublish,
    /// A PingResponse to [`Session::ping`].
    Pong {
        timestamp: u32,
    },
}

/// Violations of the command flow and malformed control messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a command message does not start with a command name")]
    NotACommand,
    #[error("command '{0}' before connect")]
    BeforeConnect(String),
    #[error("a second connect")]
    DuplicateConnect,
    #[error("connect has no app name")]
    MissingApp,
    #[error("publish has no stream name")]
    MissingStreamKey,
    #[error("publish on message stream {0}, which was not created")]
    UnknownStream(u32),
    #[error("publish while a publish is in progress")]
    AlreadyPublishing,
    #[error("more than {max} message streams created")]
    TooManyStreams { max: u32 },
    #[error("control message of type {0} truncated")]
    ControlTruncated(u8),
    #[error("aggregate message malformed")]
    BadAggregate,
}

/// Why a session failed (all are fatal: close the connection), or why a call
/// by the caller was not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("AMF0: {0}")]
    Amf(#[from] AmfError),
    #[error("media: {0}")]
    Flv(#[from] FlvError),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("no publish within {0:?}")]
    PublishTimeout(Duration),
    #[error("more than {max} bytes before a publish was accepted")]
    SetupTooLarge { max: u64 },
    #[error("the session has already failed")]
    Failed,
    #[error("no publish is waiting for an answer")]
    NoPendingPublish,
    #[error("no publish is requested or in progress")]
    NotPublishing,
}

#[derive(Debug, Clone)]
struct Publish {
    stream_id: u32,
    key: String,
}

/// The server side of one RTMP connection. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: Config,
    handshake: Handshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    pending: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    state: SessionState,
    started: Instant,
    bytes_in: u64,
    acked_at: u64,
    peer_window: u32,
    unwrapper: TimestampUnwrapper,
    app: Option<String>,
    streams: Vec<u32>,
    next_stream_id: u32,
    publish: Option<Publish>,
    publish_seen: bool,
    setup_done: bool,
}

impl Session {
    /// A session for a connection accepted at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        let decoder = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: config.max_chunk_size,
            max_message_size: config.max_message_size,
            max_chunk_streams: config.max_chunk_streams,
            max_in_flight_bytes: config.max_in_flight_bytes,
        });
        let peer_window = config.window_ack_size.max(1);
        Self {
            config,
            handshake: Handshake::new(),
            decoder,
            encoder: ChunkEncoder::new(),
            pending: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            state: SessionState::Handshake(HandshakeState::AwaitingC0),
            started: now,
            bytes_in: 0,
            acked_at: 0,
            peer_window,
            unwrapper: TimestampUnwrapper::new(),
            app: None,
            streams: Vec::new(),
            next_stream_id: 1,
            publish: None,
            publish_seen: false,
            setup_done: false,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the handshake has finished.
    pub fn is_handshake_done(&self) -> bool {
        self.handshake.state() == HandshakeState::Done
    }

    /// The app name from `connect`.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The key of the publish requested or in progress.
    pub fn stream_key(&self) -> Option<&str> {
        self.publish.as_ref().map(|p| p.key.as_str())
    }

    /// Bytes received so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes waiting to be written to the socket.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks the first `n` bytes of [`Session::output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.output.len());
        self.output.drain(..n);
    }

    /// Takes everything waiting to be written.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SessionState::Failed {
            return None;
        }
        if !self.is_handshake_done() {
            return self.started.checked_add(self.config.handshake_timeout);
        }
        if !self.publish_seen {
            return self.started.checked_add(self.config.publish_timeout);
        }
        None
    }

    /// Checks the handshake and publish deadlines at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.state == SessionState::Failed {
            return Err(Error::Failed);
        }
        let elapsed = now.saturating_duration_since(self.started);
        let err = if !self.is_handshake_done() && elapsed >= self.config.handshake_timeout {
            Some(Error::HandshakeTimeout(self.config.handshake_timeout))
        } else if !self.publish_seen && elapsed >= self.config.publish_timeout {
            Some(Error::PublishTimeout(self.config.publish_timeout))
        } else {
            None
        };
        match err {
            Some(e) => {
                self.state = SessionState::Failed;
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Feeds bytes received from the client. Any error is fatal: the session
    /// is [`SessionState::Failed`] and the connection should be closed (after
    /// writing any output and handling the events already queued).
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), Error> {
        if self.state == SessionState::Failed {
            return Err(Error::Failed);
        }
        let result = self.process(input);
        if result.is_err() {
            self.state = SessionState::Failed;
        }
        result
    }

    fn process(&mut self, input: &[u8]) -> Result<(), Error> {
        let len = u64::try_from(input.len()).unwrap_or(u64::MAX);
        self.bytes_in = self.bytes_in.saturating_add(len);
        if !self.setup_done && self.bytes_in > self.config.max_setup_bytes {
            return Err(Error::SetupTooLarge {
                max: self.config.max_setup_bytes,
            });
        }
        // Parse straight from `input` when nothing is pending; keep the tail.
        let mut buf = std::mem::take(&mut self.pending);
        if buf.is_empty() {
            let used = self.parse(input)?;
            buf.extend_from_slice(input.get(used..).unwrap_or_default());
        } else {
            buf.extend_from_slice(input);
            let used = self.parse(&buf)?;
            buf.drain(..used);
        }
        self.pending = buf;
        self.send_ack_if_due();
        Ok(())
    }

    /// Parses handshake packets and chunks from `data`; returns bytes used.
    fn parse(&mut self, data: &[u8]) -> Result<usize, Error> {
        let mut pos = 0usize;
        if !self.is_handshake_done() {
            let used = self.handshake.feed(data, &mut self.output)?;
            pos = used;
            self.state = SessionState::Handshake(self.handshake.state());
            if !self.is_handshake_done() {
                return Ok(pos);
            }
            self.state = SessionState::AwaitingConnect;
        }
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            match self.decoder.decode(rest)? {
                None => return Ok(pos),
                Some((used, message)) => {
                    pos = pos.saturating_add(used);
                    if let Some(m) = message {
                        self.dispatch(m)?;
                    }
                }
            }
        }
    }

    fn send_ack_if_due(&mut self) {
        if self.bytes_in.saturating_sub(self.acked_at) >= u64::from(self.peer_window) {
            self.acked_at = self.bytes_in;
            // The sequence number is the byte count, modulo 2^32.
            let seq = (self.bytes_in & 0xFFFF_FFFF) as u32;
            self.send_control(msg_type::ACKNOWLEDGEMENT, &seq.to_be_bytes());
        }
    }

    fn dispatch(&mut self, m: RawMessage) -> Result<(), Error> {
        match m.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let size = Reader::new(&m.payload)
                    .u32_be()
                    .ok_or(ProtocolError::ControlTruncated(m.type_id))?;
                self.decoder.set_chunk_size(size)?;
            }
            msg_type::ABORT => {
                let csid = Reader::new(&m.payload)
                    .u32_be()
                    .ok_or(ProtocolError::ControlTruncated(m.type_id))?;
                self.decoder.abort(csid);
            }
            msg_type::ACKNOWLEDGEMENT | msg_type::SET_PEER_BANDWIDTH => {}
            msg_type::WINDOW_ACK_SIZE => {
                let size = Reader::new(&m.payload)
                    .u32_be()
                    .ok_or(ProtocolError::ControlTruncated(m.type_id))?;
                // 0 would mean "acknowledge every byte"; keep the current window.
                if size > 0 {
                    self.peer_window = size;
                }
            }
            msg_type::USER_CONTROL => self.on_user_control(&m.payload)?,
            msg_type::AUDIO | msg_type::VIDEO => {
                self.on_media(m.type_id, m.stream_id, m.timestamp, m.payload)?
            }
            msg_type::DATA_AMF0 => self.on_data(m.stream_id, &m.payload)?,
            msg_type::DATA_AMF3 => self.on_data(m.stream_id, strip_amf3_prefix(&m.payload))?,
            msg_type::COMMAND_AMF0 => self.on_command(m.stream_id, &m.payload)?,
            msg_type::COMMAND_AMF3 => {
                self.on_command(m.stream_id, strip_amf3_prefix(&m.payload))?
            }
            msg_type::AGGREGATE => self.on_aggregate(m.stream_id, m.timestamp, &m.payload)?,
            // Shared objects and unknown types are ignored.
            _ => {}
        }
        Ok(())
    }

    fn on_user_control(&mut self, payload: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(payload);
        let event = r
            .u16_be()
            .ok_or(ProtocolError::ControlTruncated(msg_type::USER_CONTROL))?;
        match event {
            user_control::PING_REQUEST => {
                let ts = r
                    .u32_be()
                    .ok_or(ProtocolError::ControlTruncated(msg_type::USER_CONTROL))?;
                self.send_user_control(user_control::PING_RESPONSE, ts);
            }
            user_control::PING_RESPONSE => {
                let ts = r
                    .u32_be()
                    .ok_or(ProtocolError::ControlTruncated(msg_type::USER_CONTROL))?;
                self.events.push_back(Event::Pong { timestamp: ts });
            }
            // SetBufferLength and the rest concern players.
            _ => {}
        }
        Ok(())
    }

    fn publishing_on(&self, stream_id: u32) -> bool {
        self.state == SessionState::Publishing
            && self
                .publish
                .as_ref()
                .is_some_and(|p| p.stream_id == stream_id)
    }

    fn on_media(
        &mut self,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        if !self.publishing_on(stream_id) || payload.is_empty() {
            return Ok(());
        }
        let dts = self.unwrapper.unwrap(timestamp);
        let event = if type_id == msg_type::VIDEO {
            Event::Video(flv::parse_video(payload, dts)?)
        } else {
            Event::Audio(flv::parse_audio(payload, dts)?)
        };
        self.events.push_back(event);
        Ok(())
    }

    fn on_data(&mut self, stream_id: u32, payload: &[u8]) -> Result<(), Error> {
        if !self.publishing_on(stream_id) {
            return Ok(());
        }
        let values = amf0::decode_all(payload, &self.config.amf)?;
        let mut it = values.into_iter();
        let mut name = it.next();
        if name.as_ref().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
            name = it.next();
        }
        if name.as_ref().and_then(Amf0Value::as_str) == Some("onMetaData") {
            if let Some(Amf0Value::Object(props) | Amf0Value::EcmaArray(props)) = it.next() {
                self.events.push_back(Event::Metadata(props));
            }
        }
        Ok(())
    }

    fn on_aggregate(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), Error> {
        // A sequence of FLV tags: type(1) size(3) ts(3) ts_ext(1) stream(3)
        // body(size) back-pointer(4). Sub-tag times are relative to the first.
        let mut r = Reader::new(payload);
        let mut first: Option<u32> = None;
        while !r.is_empty() {
            let (Some(tag_type), Some(size), Some(ts_low), Some(ts_ext), Some(_sid)) =
                (r.u8(), r.u24_be(), r.u24_be(), r.u8(), r.u24_be())
            else {
                return Err(ProtocolError::BadAggregate.into());
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            let body = r.bytes(size).ok_or(ProtocolError::BadAggregate)?;
            r.u32_be().ok_or(ProtocolError::BadAggregate)?;
            let ts = ts_low | (u32::from(ts_ext) << 24);
            let base = *first.get_or_insert(ts);
            let sub_ts = timestamp.wrapping_add(ts.wrapping_sub(base));
            match tag_type {
                msg_type::AUDIO | msg_type::VIDEO => {
                    self.on_media(tag_type, stream_id, sub_ts, body.to_vec())?
                }
                msg_type::DATA_AMF0 => self.on_data(stream_id, body)?,
                _ => return Err(ProtocolError::BadAggregate.into()),
            }
        }
        Ok(())
    }

    fn on_command(&mut self, stream_id: u32, payload: &[u8]) -> Result<(), Error> {
        let values = amf0::decode_all(payload, &self.config.amf)?;
        let name = values
            .first()
            .and_then(Amf0Value::as_str)
            .ok_or(ProtocolError::NotACommand)?
            .to_owned();
        let txn = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
        let arg = |i: usize| values.get(i);

        if name == "connect" {
            if self.state != SessionState::AwaitingConnect {
                return Err(ProtocolError::DuplicateConnect.into());
            }
            return self.on_connect(txn, arg(2));
        }
        if self.state == SessionState::AwaitingConnect {
            return Err(ProtocolError::BeforeConnect(name).into());
        }
        match name.as_str() {
            "releaseStream" | "FCPublish" => {
                if txn != 0.0 {
                    self.send_command(
                        0,
                        &[
                            s("_result"),
                            Amf0Value::Number(txn),
                            Amf0Value::Null,
                            Amf0Value::Undefined,
                        ],
                    );
                }
                if name == "FCPublish" {
                    let key = arg(3)
                        .and_then(Amf0Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    self.send_command(
                        0,
                        &[
                            s("onFCPublish"),
                            Amf0Value::Number(0.0),
                            Amf0Value::Null,
                            Amf0Value::Object(vec![
                                ("code".into(), s("NetStream.Publish.Start")),
                                ("description".into(), s(&key)),
                            ]),
                        ],
                    );
                }
            }
            "createStream" => {
                let created = u32::try_from(self.streams.len()).unwrap_or(u32::MAX);
                if created >= self.config.max_message_streams {
                    return Err(ProtocolError::TooManyStreams {
                        max: self.config.max_message_streams,
                    }
                    .into());
                }
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.saturating_add(1);
                self.streams.push(id);
                self.send_command(
                    0,
                    &[
                        s("_result"),
                        Amf0Value::Number(txn),
                        Amf0Value::Null,
                        Amf0Value::Number(f64::from(id)),
                    ],
                );
            }
            "publish" => {
                if !self.streams.contains(&stream_id) {
                    return Err(ProtocolError::UnknownStream(stream_id).into());
                }
                if matches!(
                    self.state,
                    SessionState::Publishing | SessionState::PublishRequested
                ) {
                    return Err(ProtocolError::AlreadyPublishing.into());
                }
                let key = arg(3)
                    .and_then(Amf0Value::as_str)
                    .ok_or(ProtocolError::MissingStreamKey)?
                    .to_owned();
                let publish_type = arg(4)
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("live")
                    .to_owned();
                self.publish = Some(Publish {
                    stream_id,
                    key: key.clone(),
                });
                self.publish_seen = true;
                self.state = SessionState::PublishRequested;
                self.events.push_back(Event::Publish {
                    stream_key: key,
                    publish_type,
                    stream_id,
                });
            }
            "FCUnpublish" => self.end_publish(None),
            "closeStream" => self.end_publish(Some(stream_id)),
            "deleteStream" => {
                let id = arg(3)
                    .and_then(Amf0Value::as_f64)
                    .map_or(stream_id, f64_to_u32);
                self.end_publish(Some(id));
                self.streams.retain(|s| *s != id);
            }
            // Responses to our own calls (there are none besides pings).
            "_result" | "_error" | "onStatus" => {}
            other => {
                if txn != 0.0 {
                    let text = if other.starts_with("play") {
                        "this server only takes publishers".to_owned()
                    } else {
                        format!(
                            "unknown command '{}'",
                            other.chars().take(64).collect::<String>()
                        )
                    };
                    self.send_command(
                        0,
                        &[
                            s("_error"),
                            Amf0Value::Number(txn),
                            Amf0Value::Null,
                            Amf0Value::Object(vec![
                                ("level".into(), s("error")),
                                ("code".into(), s("NetConnection.Call.Failed")),
                                ("description".into(), s(&text)),
                            ]),
                        ],
                    );
                }
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, txn: f64, obj: Option<&Amf0Value>) -> Result<(), Error> {
        let field = |k: &str| obj.and_then(|o| o.get(k));
        let app = field("app")
            .and_then(Amf0Value::as_str)
            .ok_or(ProtocolError::MissingApp)?
            .to_owned();
        let tc_url = field("tcUrl")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let flash_ver = field("flashVer")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let object_encoding = field("objectEncoding")
            .and_then(Amf0Value::as_f64)
            .unwrap_or(0.0);

        let window = self.config.window_ack_size;
        self.send_control(msg_type::WINDOW_ACK_SIZE, &window.to_be_bytes());
        let mut bw = window.to_be_bytes().to_vec();
        bw.push(2); // limit type: dynamic
        self.send_control(msg_type::SET_PEER_BANDWIDTH, &bw);
        let chunk = self.config.out_chunk_size.clamp(1, 0x7FFF_FFFF);
        self.send_control(msg_type::SET_CHUNK_SIZE, &chunk.to_be_bytes());
        self.encoder.set_chunk_size(chunk);

        let mut props = vec![
            ("fmsVer".to_owned(), s("FMS/3,0,1,123")),
            ("capabilities".to_owned(), Amf0Value::Number(31.0)),
            ("mode".to_owned(), Amf0Value::Number(1.0)),
        ];
        if let Some(Amf0Value::StrictArray(list)) = field("fourCcList") {
            let known: Vec<Amf0Value> = list
                .iter()
                .filter_map(Amf0Value::as_str)
                .filter(|f| *f == "*" || KNOWN_FOURCCS.contains(f))
                .map(s)
                .collect();
            props.push(("fourCcList".to_owned(), Amf0Value::StrictArray(known)));
        }
        self.send_command(
            0,
            &[
                s("_result"),
                Amf0Value::Number(txn),
                Amf0Value::Object(props),
                Amf0Value::Object(vec![
                    ("level".into(), s("status")),
                    ("code".into(), s("NetConnection.Connect.Success")),
                    ("description".into(), s("Connection succeeded.")),
                    ("objectEncoding".into(), Amf0Value::Number(object_encoding)),
                ]),
            ],
        );
        self.app = Some(app.clone());
        self.state = SessionState::Connected;
        self.events.push_back(Event::Connect {
            app,
            tc_url,
            flash_ver,
        });
        Ok(())
    }

    /// Ends the publish in progress (on `stream_id`, when given).
    fn end_publish(&mut self, stream_id: Option<u32>) {
        let Some(p) = &self.publish else { return };
        if stream_id.is_some_and(|id| id != p.stream_id) {
            return;
        }
        let sid = p.stream_id;
        let key = p.key.clone();
        if self.state == SessionState::Publishing {
            self.send_status(
                sid,
                "status",
                "NetStream.Unpublish.Success",
                &format!("{key} is now unpublished."),
            );
        }
        if matches!(
            self.state,
            SessionState::Publishing | SessionState::PublishRequested
        ) {
            self.events.push_back(Event::Unpublish);
            self.state = SessionState::Connected;
        }
        self.publish = None;
    }

    /// Accepts the requested publish: writes StreamBegin and
    /// `onStatus(NetStream.Publish.Start)`; media is delivered from now on.
    pub fn accept_publish(&mut self) -> Result<(), Error> {
        if self.state != SessionState::PublishRequested {
            return Err(Error::NoPendingPublish);
        }
        let Some(p) = self.publish.clone() else {
            return Err(Error::NoPendingPublish);
        };
        self.send_user_control(user_control::STREAM_BEGIN, p.stream_id);
        let text = format!("{} is now published.", p.key);
        self.send_status(p.stream_id, "status", "NetStream.Publish.Start", &text);
        self.state = SessionState::Publishing;
        self.setup_done = true;
        Ok(())
    }

    /// Refuses the requested publish, or stops the one in progress (e.g. for
    /// an unsupported codec): writes `onStatus` with level `error`, `code`
    /// (see [`status`], e.g. `NetStream.Publish.BadName` for a wrong key) and
    /// `description`, which FFmpeg prints as "Server error: <description>".
    /// No [`Event::Unpublish`] follows. The client usually disconnects; the
    /// caller should close the connection once the output is written.
    pub fn reject_publish(&mut self, code: &str, description: &str) -> Result<(), Error> {
        if !matches!(
            self.state,
            SessionState::PublishRequested | SessionState::Publishing
        ) {
            return Err(Error::NotPublishing);
        }
        let Some(p) = self.publish.take() else {
            return Err(Error::NotPublishing);
        };
        self.send_status(p.stream_id, "error", code, description);
        self.state = SessionState::Connected;
        Ok(())
    }

    /// Sends a PingRequest; the client's answer arrives as [`Event::Pong`].
    pub fn ping(&mut self, timestamp: u32) {
        if self.is_handshake_done() && self.state != SessionState::Failed {
            self.send_user_control(user_control::PING_REQUEST, timestamp);
        }
    }

    fn send_control(&mut self, type_id: u8, payload: &[u8]) {
        self.encoder
            .write(CSID_CONTROL, type_id, 0, 0, payload, &mut self.output);
    }

    fn send_user_control(&mut self, event: u16, value: u32) {
        let mut p = event.to_be_bytes().to_vec();
        p.extend_from_slice(&value.to_be_bytes());
        self.send_control(msg_type::USER_CONTROL, &p);
    }

    fn send_command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM_COMMAND
        };
        self.encoder.write(
            csid,
            msg_type::COMMAND_AMF0,
            stream_id,
            0,
            &body,
            &mut self.output,
        );
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            stream_id,
            &[
                s("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Object(vec![
                    ("level".into(), s(level)),
                    ("code".into(), s(code)),
                    ("description".into(), s(description)),
                ]),
            ],
        );
    }
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.to_owned())
}

/// AMF3 command and data messages (types 17 and 15) start with a format byte
/// 0 before AMF0 values (encoders switch to AMF3 per value, which is refused).
fn strip_amf3_prefix(payload: &[u8]) -> &[u8] {
    match payload.split_first() {
        Some((0, rest)) => rest,
        _ => payload,
    }
}

/// A stream id from an AMF number; out-of-range values saturate.
fn f64_to_u32(v: f64) -> u32 {
    // `as` saturates (NaN becomes 0); ids are small integers in practice.
    v as u32
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
