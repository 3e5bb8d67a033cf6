//! The tables: Onair's layers, top first, and the upward imports still
//! allowed, each with its reason. `docs/architecture.md` ("Dependency rule")
//! states the same in words; `tests/tree.rs` checks the real sources.

use crate::Rule;

/// `server/src`.
pub const SERVER: Rule = Rule {
    name: "onair-server",
    layers: &[
        // `onair serve` start-up and the other commands.
        ("entry", &["server", "admin"]),
        // Flags and ONAIR_* variables, mapped into each module's own config type.
        ("config", &["config"]),
        // Routes, middleware, sockets' HTTP side, error mapping.
        ("edge", &["http"]),
        // The handles the edge shares (and the server functions' adapter).
        ("wiring", &["state", "backend"]),
        // Account and stream operations shared by the JSON API and server functions.
        ("services", &["service"]),
        // Long-lived per-stream and per-connection work.
        (
            "sessions",
            &[
                "ingest",
                "realtime",
                "summary",
                "publish",
                "connections",
                "webrtc",
                // A non-owner node forwarding a stream's requests to its owner.
                "forward",
            ],
        ),
        // What a stream produces besides its live window.
        ("domain", &["recording", "transcribe", "analytics"]),
        // Storage, the live window, accounts' primitives, the AI client, the
        // bus between nodes (NATS).
        (
            "infrastructure",
            &["origin", "auth", "db", "store", "openai", "cluster"],
        ),
        // The FFmpeg pipeline: only the packager below it.
        ("media", &["media"]),
        // Sans-IO and process-wide leaves.
        (
            "leaves",
            &[
                "packager",
                "telemetry",
                // The web bundle's manifest (content-hashed names).
                "bundle",
                "outstanding",
                "clock",
                "private_fs",
            ],
        ),
    ],
    // None left: the server's modules import only downward.
    exceptions: &[],
};

/// `app/src`.
pub const APP: Rule = Rule {
    name: "app",
    layers: &[
        ("pages", &["pages"]),
        ("components", &["components"]),
        // One file per area: DTOs, rules and its server functions.
        (
            "areas",
            &[
                "accounts",
                "analytics",
                "chapters",
                "chat",
                "health",
                "recordings",
                "search",
                "streams",
                "summaries",
                "transcripts",
            ],
        ),
        // The browser's protocol clients.
        ("clients", &["realtime", "publisher", "retry"]),
        // Wire types of the two sockets, close reasons, beacons, stream state.
        ("protocol", &["protocol"]),
        // Shared rules, helpers and the error that crosses the wire.
        (
            "leaves",
            &[
                "error",
                "html",
                "ids",
                "return_to",
                // The server functions' shared plumbing (ssr only).
                "serverfn",
                "assets",
                // Numbers for people; the browser's clocks (hydrate only).
                "format",
                "browser",
            ],
        ),
    ],
    exceptions: &[],
};
