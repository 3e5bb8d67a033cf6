//! `onair publish` of a file with AAC: the server copies the file's frames.

use super::publish;
use crate::rtmp::aac::{aac_file, check_copied};
use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_aac_is_copied_at_the_files_rate_and_channels() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (rate, channels) in [(44_100, 1), (48_000, 2)] {
        let file = aac_file(dir.path(), rate, channels);
        let (id, token) = app.new_stream().await;
        let out = publish(&app, &id, &token, &file, &[]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_copied(&app, &id, &file, rate, channels).await;
    }
}
