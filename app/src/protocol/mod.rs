//! The wire types of Onair's sockets and beacons, shared by the browser, the
//! server and `onair publish`. A leaf: nothing here imports an area, a client
//! or a component.
//!
//! - [`events`]: the events WebSocket (viewer count, stream state, chat,
//!   moderation, captions) and the client's [`events::Room`] reducer.
//! - [`ingest`]: the ingest WebSocket (hello, chunks, acks).
//! - [`close`]: the JSON reason of both sockets' close frames.
//! - [`beacon`]: the playback-quality beacons of a watch page.
//! - [`StreamState`]: a stream's lifecycle state, as every wire names it.

pub mod beacon;
pub mod close;
pub mod events;
pub mod ingest;
mod state;

pub use state::StreamState;
