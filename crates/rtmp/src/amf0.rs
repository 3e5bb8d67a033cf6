//! AMF0 (Action Message Format 0), the encoding of RTMP commands and FLV
//! script data.
//!
//! Supported markers, both ways: number (0x00), boolean (0x01), string (0x02),
//! object (0x03), null (0x05), undefined (0x06), ECMA array (0x08), object end
//! (0x09, inside objects and ECMA arrays only), strict array (0x0A), date
//! (0x0B) and long string (0x0C). Every other marker (movie clip, reference,
//! unsupported, record set, XML document, typed object, the switch to AMF3) is
//! refused with [`AmfError::UnsupportedMarker`].
//!
//! Decoding is bounded by [`AmfLimits`]: nesting depth, the length of one
//! string, and the number of values in one message (so a strict array that
//! claims four billion entries, or eight million one-byte nulls, cannot make
//! the decoder allocate more than the limit allows). Strings are UTF-8; invalid
//! sequences are replaced (U+FFFD) rather than refused, so a stream key with a
//! stray byte simply fails to match.

use crate::reader::Reader;

/// Markers of the AMF0 specification.
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
}

/// One AMF0 value. Property lists keep their wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string; encoded as a long string (0x0C) when longer than 65,535 bytes.
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch, and the (unused, usually 0) time zone.
    Date {
        millis: f64,
        timezone: i16,
    },
}

impl Amf0Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Self::Object(p) | Self::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Appends the AMF0 encoding of this value to `out`. Property names longer
    /// than 65,535 bytes (AMF0's limit for a name) are cut at a character
    /// boundary.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Number(n) => {
                out.push(marker::NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Self::Boolean(b) => {
                out.push(marker::BOOLEAN);
                out.push(u8::from(*b));
            }
            Self::String(s) => match u16::try_from(s.len()) {
                Ok(len) => {
                    out.push(marker::STRING);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                Err(_) => {
                    out.push(marker::LONG_STRING);
                    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(s.as_bytes().get(..len as usize).unwrap_or_default());
                }
            },
            Self::Object(props) => {
                out.push(marker::OBJECT);
                encode_properties(props, out);
            }
            Self::Null => out.push(marker::NULL),
            Self::Undefined => out.push(marker::UNDEFINED),
            Self::EcmaArray(props) => {
                out.push(marker::ECMA_ARRAY);
                let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                encode_properties(props, out);
            }
            Self::StrictArray(items) => {
                out.push(marker::STRICT_ARRAY);
                let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                for item in items.iter().take(count as usize) {
                    item.encode(out);
                }
            }
            Self::Date { millis, timezone } => {
                out.push(marker::DATE);
                out.extend_from_slice(&millis.to_be_bytes());
                out.extend_from_slice(&timezone.to_be_bytes());
            }
        }
    }
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    let mut end = name.len().min(usize::from(u16::MAX));
    while !name.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let bytes = name.as_bytes().get(..end).unwrap_or_default();
    let len = u16::try_from(bytes.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (name, value) in props {
        encode_name(name, out);
        value.encode(out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

/// Encodes a sequence of values (a command or a data message body).
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Bounds for decoding untrusted AMF0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmfLimits {
    /// Deepest nesting of objects and arrays (the top level is depth 0).
    pub max_depth: usize,
    /// Longest single string or property name, in bytes.
    pub max_string_len: usize,
    /// Most values (counting every nested value and property) in one decode.
    pub max_values: usize,
}

impl Default for AmfLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_string_len: 64 * 1024,
            max_values: 16 * 1024,
        }
    }
}

/// Why AMF0 input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0 value truncated")]
    Truncated,
    #[error("unsupported AMF0 marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    #[error("AMF0 object end marker outside an object")]
    UnexpectedObjectEnd,
    #[error("AMF0 nesting deeper than {max}")]
    TooDeep { max: usize },
    #[error("AMF0 string of {len} bytes is longer than the limit of {max}")]
    StringTooLong { len: usize, max: usize },
    #[error("more than {max} AMF0 values in one message")]
    TooManyValues { max: usize },
}

/// Decodes every value in `data` (a command or data message body).
pub fn decode_all(data: &[u8], limits: &AmfLimits) -> Result<Vec<Amf0Value>, AmfError> {
    let mut r = Reader::new(data);
    let mut budget = limits.max_values;
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(decode_value(&mut r, limits, 0, &mut budget)?);
    }
    Ok(out)
}

/// Decodes one value from the start of `data`; returns it and the bytes used.
pub fn decode_one(data: &[u8], limits: &AmfLimits) -> Result<(Amf0Value, usize), AmfError> {
    let mut r = Reader::new(data);
    let mut budget = limits.max_values;
    let v = decode_value(&mut r, limits, 0, &mut budget)?;
    Ok((v, r.position()))
}

fn take_budget(budget: &mut usize, limits: &AmfLimits) -> Result<(), AmfError> {
    *budget = budget.checked_sub(1).ok_or(AmfError::TooManyValues {
        max: limits.max_values,
    })?;
    Ok(())
}

fn read_utf8(r: &mut Reader<'_>, len: usize, limits: &AmfLimits) -> Result<String, AmfError> {
    if len > limits.max_string_len {
        return Err(AmfError::StringTooLong {
            len,
            max: limits.max_string_len,
        });
    }
    let bytes = r.bytes(len).ok_or(AmfError::Truncated)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn read_name(r: &mut Reader<'_>, limits: &AmfLimits) -> Result<String, AmfError> {
    let len = r.u16_be().ok_or(AmfError::Truncated)?;
    read_utf8(r, usize::from(len), limits)
}

/// Reads properties up to and including the object end marker. For an ECMA
/// array, `lenient_count` accepts a body that ends after that many properties
/// without the end marker (some encoders omit it at the end of a message).
fn read_properties(
    r: &mut Reader<'_>,
    limits: &AmfLimits,
    depth: usize,
    budget: &mut usize,
    lenient_count: Option<u32>,
) -> Result<Vec<(String, Amf0Value)>, AmfError> {
    let mut props = Vec::new();
    loop {
        if let Some(count) = lenient_count {
            if r.is_empty() && u32::try_from(props.len()).is_ok_and(|n| n >= count) {
                return Ok(props);
            }
        }
        let name = read_name(r, limits)?;
        if name.is_empty() && r.rest().first() == Some(&marker::OBJECT_END) {
            r.u8();
            return Ok(props);
        }
        take_budget(budget, limits)?;
        let value = decode_value(r, limits, depth, budget)?;
        props.push((name, value));
    }
}

fn decode_value(
    r: &mut Reader<'_>,
    limits: &AmfLimits,
    depth: usize,
    budget: &mut usize,
) -> Result<Amf0Value, AmfError> {
    take_budget(budget, limits)?;
    let m = r.u8().ok_or(AmfError::Truncated)?;
    let nested = || -> Result<usize, AmfError> {
        let d = depth.saturating_add(1);
        if d > limits.max_depth {
            Err(AmfError::TooDeep {
                max: limits.max_depth,
            })
        } else {
            Ok(d)
        }
    };
    Ok(match m {
        marker::NUMBER => Amf0Value::Number(r.f64_be().ok_or(AmfError::Truncated)?),
        marker::BOOLEAN => Amf0Value::Boolean(r.u8().ok_or(AmfError::Truncated)? != 0),
        marker::STRING => {
            let len = r.u16_be().ok_or(AmfError::Truncated)?;
            Amf0Value::String(read_utf8(r, usize::from(len), limits)?)
        }
        marker::LONG_STRING => {
            let len = r.u32_be().ok_or(AmfError::Truncated)?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            Amf0Value::String(read_utf8(r, len, limits)?)
        }
        marker::OBJECT => {
            let d = nested()?;
            Amf0Value::Object(read_properties(r, limits, d, budget, None)?)
        }
        marker::NULL => Amf0Value::Null,
        marker::UNDEFINED => Amf0Value::Undefined,
        marker::ECMA_ARRAY => {
            let d = nested()?;
            let count = r.u32_be().ok_or(AmfError::Truncated)?;
            Amf0Value::EcmaArray(read_properties(r, limits, d, budget, Some(count))?)
        }
        marker::STRICT_ARRAY => {
            let d = nested()?;
            let count = r.u32_be().ok_or(AmfError::Truncated)?;
            // No allocation from the claimed count: every value takes at least
            // one byte and one unit of the budget, so the loop is bounded.
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(decode_value(r, limits, d, budget)?);
            }
            Amf0Value::StrictArray(items)
        }
        marker::DATE => {
            let millis = r.f64_be().ok_or(AmfError::Truncated)?;
            let timezone = r.i16_be().ok_or(AmfError::Truncated)?;
            Amf0Value::Date { millis, timezone }
        }
        marker::OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
        other => return Err(AmfError::UnsupportedMarker(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Amf0Value {
        Amf0Value::String(v.to_owned())
    }

    fn round_trip(v: &Amf0Value) {
        let mut buf = Vec::new();
        v.encode(&mut buf);
        let (back, used) = decode_one(&buf, &AmfLimits::default()).expect("decodes");
        assert_eq!(&back, v);
        assert_eq!(used, buf.len());
    }

    #[test]
    fn every_supported_type_round_trips() {
        let values = [
            Amf0Value::Number(0.0),
            Amf0Value::Number(-1.5e300),
            Amf0Value::Number(4_294_967_296.0),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(false),
            s(""),
            s("live/KEY?x=ünïcödé 🎥"),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::Object(vec![]),
            Amf0Value::Object(vec![
                ("app".into(), s("live")),
                ("n".into(), Amf0Value::Number(3.0)),
                ("".into(), Amf0Value::Null),
            ]),
            Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]),
            Amf0Value::StrictArray(vec![s("a"), Amf0Value::Boolean(true), Amf0Value::Null]),
            Amf0Value::Date {
                millis: 1.7e12,
                timezone: -60,
            },
            Amf0Value::Object(vec![(
                "nested".into(),
                Amf0Value::EcmaArray(vec![(
                    "list".into(),
                    Amf0Value::StrictArray(vec![Amf0Value::Object(vec![])]),
                )]),
            )]),
        ];
        for v in &values {
            round_trip(v);
        }
    }

    #[test]
    fn long_string_is_used_past_65535_bytes_and_round_trips() {
        let long = "x".repeat(70_000);
        let mut buf = Vec::new();
        s(&long).encode(&mut buf);
        assert_eq!(buf.first(), Some(&marker::LONG_STRING));
        assert_eq!(buf.get(1..5), Some(&70_000u32.to_be_bytes()[..]));
        let limits = AmfLimits {
            max_string_len: 100_000,
            ..AmfLimits::default()
        };
        let (back, _) = decode_one(&buf, &limits).expect("decodes");
        assert_eq!(back, s(&long));
        // With the default 64 KiB limit the same value is refused.
        assert_eq!(
            decode_one(&buf, &AmfLimits::default()),
            Err(AmfError::StringTooLong {
                len: 70_000,
                max: 65_536
            })
        );
    }

    #[test]
    fn decodes_bytes_written_by_hand() {
        // "connect", 1.0, {app: "live"}
        let mut data = vec![0x02, 0x00, 0x07];
        data.extend_from_slice(b"connect");
        data.push(0x00);
        data.extend_from_slice(&1.0f64.to_be_bytes());
        data.extend_from_slice(&[0x03, 0x00, 0x03]);
        data.extend_from_slice(b"app");
        data.extend_from_slice(&[0x02, 0x00, 0x04]);
        data.extend_from_slice(b"live");
        data.extend_from_slice(&[0x00, 0x00, 0x09]);
        let values = decode_all(&data, &AmfLimits::default()).expect("decodes");
        assert_eq!(
            values,
            vec![
                s("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Object(vec![("app".into(), s("live"))])
            ]
        );
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
    }

    #[test]
    fn ecma_array_without_end_marker_at_end_of_message() {
        let mut data = vec![0x08, 0, 0, 0, 1, 0, 1, b'a'];
        data.push(0x05);
        let values = decode_all(&data, &AmfLimits::default()).expect("lenient");
        assert_eq!(
            values,
            vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)])]
        );
    }

    #[test]
    fn refuses_unsupported_markers() {
        for m in [0x04, 0x07, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0xFF] {
            assert_eq!(
                decode_all(&[m, 0, 0, 0, 0], &AmfLimits::default()),
                Err(AmfError::UnsupportedMarker(m))
            );
        }
        assert_eq!(
            decode_all(&[0x09], &AmfLimits::default()),
            Err(AmfError::UnexpectedObjectEnd)
        );
    }

    #[test]
    fn refuses_truncation_everywhere() {
        let mut full = Vec::new();
        Amf0Value::Object(vec![
            ("a".into(), s("hello")),
            (
                "b".into(),
                Amf0Value::StrictArray(vec![Amf0Value::Number(1.0)]),
            ),
            (
                "c".into(),
                Amf0Value::Date {
                    millis: 1.0,
                    timezone: 0,
                },
            ),
        ])
        .encode(&mut full);
        for cut in 0..full.len() {
            let part = full.get(..cut).expect("in range");
            let res = decode_one(part, &AmfLimits::default());
            assert_eq!(res, Err(AmfError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn bounded_depth() {
        let limits = AmfLimits::default();
        // 16 nested strict arrays are fine, 17 are refused.
        let mut ok = Vec::new();
        for _ in 0..16 {
            ok.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        ok.push(0x05);
        assert!(decode_all(&ok, &limits).is_ok());
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        assert_eq!(
            decode_all(&deep, &limits),
            Err(AmfError::TooDeep { max: 16 })
        );
    }

    #[test]
    fn bounded_value_count() {
        // A strict array claiming 4 billion entries followed by many nulls.
        let mut data = vec![0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        data.extend(std::iter::repeat_n(0x05, 100_000));
        assert_eq!(
            decode_all(&data, &AmfLimits::default()),
            Err(AmfError::TooManyValues { max: 16 * 1024 })
        );
        // Claiming more entries than there are bytes is plain truncation.
        assert_eq!(
            decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05], &AmfLimits::default()),
            Err(AmfError::Truncated)
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let data = [0x02, 0x00, 0x02, 0xC3, 0x28];
        assert_eq!(
            decode_all(&data, &AmfLimits::default()),
            Ok(vec![s("\u{FFFD}(")])
        );
    }
}
