//! The web bundle's manifest: the content-hashed names `make build-web`
//! (tools/web/bundle.sh) gives the bundle and lists in
//! `<site-root>/pkg/assets.txt`:
//!
//! ```text
//! js: onair-0123456789abcdef.js
//! wasm: onair-0123456789abcdef_bg.wasm
//! css: onair-fedcba9876543210.css
//! hls: hls-00112233aabbccdd.min.js
//! ```
//!
//! [`Site::load`] reads the list once at start-up: pages link those names,
//! and `http::site` serves them `immutable` (a new build has new names). A
//! site root without the list (built by hand or by cargo-leptos) is served
//! under the unhashed names. A leaf: the start-up, the shared state and the
//! edge all read it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The manifest `make build-web` writes, relative to the site root.
pub const MANIFEST: &str = "pkg/assets.txt";

/// The wasm-bindgen output's name when the bundle is not hashed.
pub const DEFAULT_OUTPUT_NAME: &str = "onair";

/// The site root and what its manifest says.
#[derive(Clone, Debug)]
pub struct Site {
    /// The directory served.
    pub root: PathBuf,
    /// The wasm-bindgen output name `HydrationScripts` links: `<name>.js`
    /// and `<name>_bg.wasm` under `/pkg/`.
    pub output_name: String,
    /// The stylesheet's and hls.js's URLs.
    pub assets: app::assets::Assets,
    /// The URL paths served `immutable` (`/pkg/<hashed name>`).
    immutable: HashSet<String>,
}

/// Why the manifest was not used (the site is then served unhashed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `key: file name`, or names a file that is not there.
    #[error("{path}, line {line}: {reason}")]
    Invalid {
        /// The manifest's path.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `js` and `wasm` do not name one wasm-bindgen output (`<n>.js`, `<n>_bg.wasm`),
    /// or one of the four entries is missing.
    #[error("{path}: {reason}")]
    Incomplete {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Site {
    /// The site root served under the unhashed names.
    pub fn unhashed(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            output_name: DEFAULT_OUTPUT_NAME.into(),
            assets: app::assets::Assets::default(),
            immutable: HashSet::new(),
        }
    }

    /// Reads the manifest of `root`: `Ok(None)` when there is none.
    pub fn from_manifest(root: &Path) -> Result<Option<Self>, ManifestError> {
        let path = root.join(MANIFEST);
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Read {
                    path: shown,
                    source,
                })
            }
        };
        let (mut js, mut wasm, mut css, mut hls) = (None, None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| ManifestError::Invalid {
                path: shown.clone(),
                line: i + 1,
                reason,
            };
            let Some((key, name)) = line.split_once(':') else {
                return Err(invalid("expected `key: file name`".into()));
            };
            let name = name.trim();
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                return Err(invalid(format!("{name:?} is not a plain file name")));
            }
            if !root.join("pkg").join(name).is_file() {
                return Err(invalid(format!("pkg/{name} does not exist")));
            }
            let slot = match key.trim() {
                "js" => &mut js,
                "wasm" => &mut wasm,
                "css" => &mut css,
                "hls" => &mut hls,
                other => return Err(invalid(format!("unknown key {other:?}"))),
            };
            *slot = Some(name.to_string());
        }
        let incomplete = |reason: String| ManifestError::Incomplete {
            path: shown.clone(),
            reason,
        };
        let (Some(js), Some(wasm), Some(css), Some(hls)) = (js, wasm, css, hls) else {
            return Err(incomplete("js, wasm, css and hls are all required".into()));
        };
        let output_name = match js.strip_suffix(".js") {
            Some(stem) if wasm == format!("{stem}_bg.wasm") => stem.to_string(),
            _ => {
                return Err(incomplete(format!(
                    "js {js:?} and wasm {wasm:?} are not `<name>.js` and `<name>_bg.wasm`"
                )))
            }
        };
        let immutable = [&js, &wasm, &css, &hls]
            .into_iter()
            .map(|name| format!("/pkg/{name}"))
            .collect();
        Ok(Some(Self {
            root: root.to_path_buf(),
            output_name,
            assets: app::assets::Assets {
                css: format!("/pkg/{css}"),
                hls: format!("/pkg/{hls}"),
            },
            immutable,
        }))
    }

    /// The site as its manifest describes it, or unhashed (with a warning
    /// when the manifest is there but unusable).
    pub fn load(root: &Path) -> Self {
        match Self::from_manifest(root) {
            Ok(Some(site)) => site,
            Ok(None) => Self::unhashed(root),
            Err(e) => {
                tracing::warn!(error = %e, "serving the web bundle under its unhashed names");
                Self::unhashed(root)
            }
        }
    }

    /// The wasm-bindgen JS file pages load, under the site root.
    pub fn js_path(&self) -> PathBuf {
        self.root
            .join("pkg")
            .join(format!("{}.js", self.output_name))
    }

    /// Whether the file at URL `path` is content-hashed.
    pub fn is_immutable(&self, path: &str) -> bool {
        self.immutable.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_with(files: &[&str], manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("pkg")).expect("pkg");
        for f in files {
            std::fs::write(dir.path().join("pkg").join(f), b"x").expect("file");
        }
        std::fs::write(dir.path().join(MANIFEST), manifest).expect("manifest");
        dir
    }

    const FILES: [&str; 4] = [
        "onair-0123456789abcdef.js",
        "onair-0123456789abcdef_bg.wasm",
        "onair-fedcba9876543210.css",
        "hls-00112233aabbccdd.min.js",
    ];
    const MANIFEST_TEXT: &str =
        "js: onair-0123456789abcdef.js\nwasm: onair-0123456789abcdef_bg.wasm\n\
        css: onair-fedcba9876543210.css\nhls: hls-00112233aabbccdd.min.js\n";

    #[test]
    fn a_manifest_names_the_hashed_files() {
        let dir = site_with(&FILES, MANIFEST_TEXT);
        let site = Site::from_manifest(dir.path())
            .expect("valid")
            .expect("present");
        assert_eq!(site.output_name, "onair-0123456789abcdef");
        assert_eq!(site.assets.css, "/pkg/onair-fedcba9876543210.css");
        assert_eq!(site.assets.hls, "/pkg/hls-00112233aabbccdd.min.js");
        assert!(site.is_immutable("/pkg/onair-0123456789abcdef_bg.wasm"));
        assert!(!site.is_immutable("/pkg/onair_bg.wasm"));
        assert!(!site.is_immutable("/favicon.svg"));
        assert!(site.js_path().ends_with("pkg/onair-0123456789abcdef.js"));
    }

    #[test]
    fn no_manifest_means_unhashed_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Site::from_manifest(dir.path()).expect("no error").is_none());
        let site = Site::load(dir.path());
        assert_eq!(site.output_name, "onair");
        assert_eq!(site.assets, app::assets::Assets::default());
    }

    #[test]
    fn a_bad_manifest_is_refused_and_the_site_served_unhashed() {
        for (files, text) in [
            // A path, not a name.
            (
                &FILES[..],
                MANIFEST_TEXT.replace("hls: hls-", "hls: ../hls-"),
            ),
            // A file that is not there.
            (&FILES[..3], MANIFEST_TEXT.to_string()),
            // js and wasm of two builds.
            (
                &FILES[..],
                MANIFEST_TEXT.replace(
                    "wasm: onair-0123456789abcdef_bg.wasm",
                    "wasm: onair-fedcba9876543210.css",
                ),
            ),
            // An entry missing.
            (
                &FILES[..],
                MANIFEST_TEXT.replace("css: onair-fedcba9876543210.css\n", ""),
            ),
            (&FILES[..], format!("{MANIFEST_TEXT}no colon here\n")),
            (
                &FILES[..],
                format!("{MANIFEST_TEXT}font: onair-fedcba9876543210.css\n"),
            ),
        ] {
            let dir = site_with(files, &text);
            assert!(
                Site::from_manifest(dir.path()).is_err(),
                "accepted:\n{text}"
            );
            assert_eq!(Site::load(dir.path()).output_name, "onair");
        }
    }
}
