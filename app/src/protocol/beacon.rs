//! Viewer-session beacons: what a watch page reports about playback, over
//! the events socket (`beacon`) or `POST /api/v1/beacons`.
//!
//! Counters in a [`Quality`] beacon are cumulative for the page session, so a
//! lost beacon loses nothing: the server adds the difference to the last one.

use serde::{Deserialize, Serialize};

/// How often a watch page sends a heartbeat beacon, in seconds.
pub const HEARTBEAT_SECS: u32 = 10;

/// Playback quality as a watch page measured it so far (cumulative counters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// Time from starting the player to the first frame, ms (once known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttff_ms: Option<u32>,
    /// Stalls (rebuffering) so far.
    #[serde(default)]
    pub stalls: u32,
    /// Time spent stalled so far, ms.
    #[serde(default)]
    pub stall_ms: u64,
    /// The rendition playing now, e.g. `720p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<String>,
    /// Its bitrate, bit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
    /// Rendition switches so far.
    #[serde(default)]
    pub switches: u32,
    /// Distance from the live edge (wall clock minus the playhead's
    /// `EXT-X-PROGRAM-DATE-TIME`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// Fatal player errors so far.
    #[serde(default)]
    pub errors: u32,
}

/// The most a beacon may report, per field. Beacons come from anonymous
/// clients, so the server clamps every number to these bounds on arrival
/// ([`Quality::bounded`]) before it adds anything up; the counters are
/// cumulative for a page session, so each beacon's increase is bounded too.
/// Documented in `docs/api.md` ("Beacons").
pub mod bounds {
    /// Time to first frame, ms (10 minutes).
    pub const TTFF_MS: u32 = 600_000;
    /// Stalls in one page session.
    pub const STALLS: u32 = 100_000;
    /// Time stalled in one page session, ms (7 days).
    pub const STALL_MS: u64 = 7 * 86_400_000;
    /// Rendition switches in one page session.
    pub const SWITCHES: u32 = 100_000;
    /// Distance from the live edge, ms (1 hour).
    pub const LATENCY_MS: u32 = 3_600_000;
    /// Bitrate of the rendition playing, bit/s (1 Gbit/s).
    pub const BITRATE: u32 = 1_000_000_000;
    /// Fatal player errors in one page session.
    pub const ERRORS: u32 = 10_000;
    /// Characters of a rendition name.
    pub const RENDITION_CHARS: usize = 32;
}

impl Quality {
    /// This beacon with every number clamped to [`bounds`] (and the
    /// rendition name cut to [`bounds::RENDITION_CHARS`]).
    pub fn bounded(&self) -> Quality {
        Quality {
            ttff_ms: self.ttff_ms.map(|v| v.min(bounds::TTFF_MS)),
            stalls: self.stalls.min(bounds::STALLS),
            stall_ms: self.stall_ms.min(bounds::STALL_MS),
            rendition: self
                .rendition
                .as_ref()
                .map(|r| r.chars().take(bounds::RENDITION_CHARS).collect()),
            bitrate: self.bitrate.map(|v| v.min(bounds::BITRATE)),
            switches: self.switches.min(bounds::SWITCHES),
            latency_ms: self.latency_ms.map(|v| v.min(bounds::LATENCY_MS)),
            errors: self.errors.min(bounds::ERRORS),
        }
    }
}

/// `POST /api/v1/beacons`: a heartbeat (or a leave) sent over HTTP when the
/// events socket is down, or with `navigator.sendBeacon` when the page closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// The stream watched.
    pub stream_id: String,
    /// The browser's anonymous viewer id (as in the events `hello`).
    pub viewer_id: String,
    /// The page is going away: end the session now.
    #[serde(default)]
    pub leave: bool,
    /// Playback quality so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_are_clamped_to_the_bounds() {
        let absurd = Quality {
            ttff_ms: Some(u32::MAX),
            stalls: u32::MAX,
            stall_ms: u64::MAX,
            rendition: Some("x".repeat(10_000)),
            bitrate: Some(u32::MAX),
            switches: u32::MAX,
            latency_ms: Some(u32::MAX),
            errors: u32::MAX,
        };
        let b = absurd.bounded();
        assert_eq!(b.ttff_ms, Some(bounds::TTFF_MS));
        assert_eq!(b.stalls, bounds::STALLS);
        assert_eq!(b.stall_ms, bounds::STALL_MS);
        assert_eq!(
            b.rendition.map(|r| r.chars().count()),
            Some(bounds::RENDITION_CHARS)
        );
        assert_eq!(b.bitrate, Some(bounds::BITRATE));
        assert_eq!(b.switches, bounds::SWITCHES);
        assert_eq!(b.latency_ms, Some(bounds::LATENCY_MS));
        assert_eq!(b.errors, bounds::ERRORS);
        // What a real player reports passes unchanged.
        let real = Quality {
            ttff_ms: Some(900),
            stalls: 2,
            stall_ms: 1500,
            rendition: Some("720p".into()),
            bitrate: Some(2_000_000),
            switches: 1,
            latency_ms: Some(2600),
            errors: 0,
        };
        assert_eq!(real.bounded(), real);
    }

    #[test]
    fn a_beacon_reads_with_missing_fields() {
        let b: Beacon = serde_json::from_str(r#"{"stream_id":"s1","viewer_id":"abcdefgh"}"#)
            .expect("minimal beacon");
        assert!(!b.leave);
        assert_eq!(b.quality, None);
        let q: Quality = serde_json::from_str(r#"{"ttff_ms":800,"stalls":2}"#).expect("quality");
        assert_eq!(q.ttff_ms, Some(800));
        assert_eq!(q.stalls, 2);
        assert_eq!(q.latency_ms, None);
    }
}
