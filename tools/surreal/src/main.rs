//! The SurrealDB server binary (`surreal start ...`), built from the `surrealdb-server`
//! crate because no package ships one. Used by the test suite to exercise Onair's
//! remote-database mode (`--db ws://...`) against the real server.

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
