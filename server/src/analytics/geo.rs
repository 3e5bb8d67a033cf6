//! GeoIP: country, region and city of a client IP from MaxMind-format
//! `.mmdb` files, read with the `maxminddb` crate.
//!
//! Two record layouts are understood:
//! - the flat one of the ip-location-db files (DB-IP, GeoLite2 repacks):
//!   `{country_code, state1, city, ...}`;
//! - MaxMind's GeoIP2/GeoLite2 City: `{country: {iso_code}, subdivisions:
//!   [{names: {en}}], city: {names: {en}}}`.
//!
//! Several files may be given (an IPv4 and an IPv6 one); the first that knows
//! an address answers. The IP itself is never kept.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;

/// Where a viewer is, as far as the database knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    /// ISO 3166-1 alpha-2 country code, or `??` when unknown.
    pub country: String,
    /// State, province or region.
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
}

impl Place {
    /// Not in any database.
    pub fn unknown() -> Self {
        Place {
            country: UNKNOWN.into(),
            region: None,
            city: None,
        }
    }
}

/// The country code of an unknown place.
pub const UNKNOWN: &str = "??";

#[derive(Deserialize)]
struct Flat {
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    state1: Option<String>,
    #[serde(default)]
    city: Option<String>,
}

#[derive(Deserialize, Default)]
struct Names {
    #[serde(default)]
    names: BTreeMap<String, String>,
}

impl Names {
    fn en(self) -> Option<String> {
        let mut names = self.names;
        names.remove("en").or_else(|| names.into_values().next())
    }
}

#[derive(Deserialize)]
struct Country {
    #[serde(default)]
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct Standard {
    #[serde(default)]
    country: Option<Country>,
    #[serde(default)]
    registered_country: Option<Country>,
    #[serde(default)]
    subdivisions: Vec<Names>,
    #[serde(default)]
    city: Option<Names>,
}

/// Open GeoIP databases (possibly none).
pub struct GeoIp {
    readers: Vec<(PathBuf, Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.readers.iter().map(|(p, _)| p))
            .finish()
    }
}

impl GeoIp {
    /// No database: every place is unknown.
    pub fn none() -> Self {
        GeoIp {
            readers: Vec::new(),
        }
    }

    /// Opens each file that exists and is readable. Missing or broken files are
    /// logged once, here, and skipped: geography is then "unknown", and the
    /// server runs on.
    pub fn open(paths: &[PathBuf]) -> Self {
        let mut readers = Vec::new();
        for path in paths {
            match open_one(path) {
                Ok(r) => {
                    tracing::info!(path = %path.display(), kind = %r.metadata().database_type, "GeoIP database loaded");
                    readers.push((path.clone(), r));
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "no GeoIP database: viewer geography will be \"unknown\" (run `make deps` to install the free DB-IP one)"
                ),
            }
        }
        GeoIp { readers }
    }

    /// Whether any database is loaded.
    pub fn is_loaded(&self) -> bool {
        !self.readers.is_empty()
    }

    /// Where `ip` is; [`Place::unknown`] when no database knows it.
    pub fn lookup(&self, ip: IpAddr) -> Place {
        for (_, reader) in &self.readers {
            if let Some(place) = lookup_in(reader, ip) {
                return place;
            }
        }
        Place::unknown()
    }
}

fn open_one(path: &Path) -> Result<Reader<Vec<u8>>, maxminddb::MaxMindDbError> {
    Reader::open_readfile(path)
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 120)
}

fn lookup_in(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<Place> {
    let found = reader.lookup(ip).ok()?;
    if !found.has_data() {
        return None;
    }
    // The flat layout has a string `city`; MaxMind's has a map there, which
    // fails this decode and falls through to the standard one.
    if let Ok(Some(flat)) = found.decode::<Flat>() {
        if let Some(code) = clean(flat.country_code) {
            return Some(Place {
                country: code.to_ascii_uppercase(),
                region: clean(flat.state1),
                city: clean(flat.city),
            });
        }
    }
    let std = found.decode::<Standard>().ok()??;
    let code = std
        .country
        .and_then(|c| c.iso_code)
        .or_else(|| std.registered_country.and_then(|c| c.iso_code));
    let code = clean(code)?;
    Some(Place {
        country: code.to_ascii_uppercase(),
        region: clean(std.subdivisions.into_iter().next().and_then(Names::en)),
        city: clean(std.city.and_then(Names::en)),
    })
}
