//! WebSocket frames as the server writes them (RFC 6455 §5.2): a server's
//! frames are never masked, so a frame's bytes are the same for every
//! client. A room frames each event once and writes those bytes to every
//! socket ([`super::fanout`]).

use bytes::{BufMut, Bytes, BytesMut};

/// Opcodes the server sends.
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 10);
    b.put_u8(0x80 | opcode);
    match payload.len() {
        n if n < 126 => b.put_u8(n as u8),
        n if n <= usize::from(u16::MAX) => {
            b.put_u8(126);
            b.put_u16(n as u16);
        }
        n => {
            b.put_u8(127);
            b.put_u64(n as u64);
        }
    }
    b.put_slice(payload);
    b.freeze()
}

/// A final, unmasked text frame carrying `text`.
pub fn text(text: &str) -> Bytes {
    frame(TEXT, text.as_bytes())
}

/// An empty ping.
pub fn ping() -> Bytes {
    frame(PING, &[])
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control
/// frame leaves for it, at a character boundary).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, Role};
    use tokio_tungstenite::tungstenite::Message;

    /// What a real WebSocket client (tungstenite) reads from `bytes`: one
    /// message per frame.
    async fn read_back(bytes: Vec<Bytes>) -> Vec<Message> {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let n = bytes.len();
        for b in bytes {
            server.write_all(&b).await.unwrap();
        }
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // The server end stays open: the client answers the close.
        let got = ws
            .take(n)
            .map(|m| m.expect("a valid frame"))
            .collect()
            .await;
        drop(server);
        got
    }

    #[tokio::test]
    async fn a_client_reads_every_length_form_and_the_control_frames() {
        // 7-bit, 16-bit and 64-bit lengths, at their edges.
        let lengths = [0usize, 1, 125, 126, 65_535, 65_536, 70_000];
        let texts: Vec<String> = lengths
            .iter()
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let mut frames: Vec<Bytes> = texts.iter().map(|t| text(t)).collect();
        frames.push(ping());
        let long_reason = "ü".repeat(100);
        frames.push(close(4029, &long_reason));
        let got = read_back(frames).await;
        for (m, t) in got.iter().zip(&texts) {
            assert_eq!(m, &Message::Text(t.as_str().into()));
        }
        assert_eq!(got[texts.len()], Message::Ping(Bytes::new()));
        let Message::Close(Some(c)) = &got[texts.len() + 1] else {
            panic!("no close: {:?}", got.last());
        };
        assert_eq!(c.code, CloseCode::from(4029));
        assert_eq!(
            c.reason.as_str(),
            "ü".repeat(61),
            "cut at a character boundary"
        );
    }

    #[test]
    fn headers_are_as_small_as_the_length_allows() {
        assert_eq!(&text("hi")[..], b"\x81\x02hi");
        assert_eq!(text(&"a".repeat(126)).len(), 4 + 126);
        assert_eq!(text(&"a".repeat(65_536)).len(), 10 + 65_536);
        assert_eq!(&close(1000, "")[..], b"\x88\x02\x03\xe8");
    }
}
