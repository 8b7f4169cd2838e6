//! `otel:`: where OpenTelemetry traces go (`otel.endpoint`, an OTLP/gRPC collector) and the
//! service name they carry. Both are optional here: the standard `OTEL_EXPORTER_OTLP_*` and
//! `OTEL_SERVICE_NAME` environment variables fill in what the file leaves out (`telemetry`).

use url::Url;

use super::reader::Reader;

/// `otel:` as configured; `None`s are left to the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelSettings {
    /// `otel.endpoint`: an `http://` OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub endpoint: Option<Url>,
    /// `otel.service_name`: the `service.name` resource attribute.
    pub service_name: Option<String>,
}

pub(super) fn otel_settings(reader: &mut Reader) -> OtelSettings {
    let Some(map) = reader.mapping("otel") else {
        return OtelSettings::default();
    };
    let mut otel = Reader::new(Some(map), "otel", reader.errors);
    let endpoint = otel
        .string("endpoint")
        .and_then(|text| match collector_url(&text) {
            Ok(url) => Some(url),
            Err(problem) => {
                otel.error("endpoint", problem);
                None
            }
        });
    let service_name = otel.string("service_name");
    if service_name.as_deref().is_some_and(str::is_empty) {
        otel.error("service_name", "must not be empty");
    }
    otel.finish();
    OtelSettings {
        endpoint,
        service_name: service_name.filter(|name| !name.is_empty()),
    }
}

/// Why a collector address was refused (after its key or variable name in the problem line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CollectorUrlError {
    #[error("must be a URL such as http://127.0.0.1:4317")]
    NotAUrl,
    #[error("must be an http:// URL (TLS to the collector is not supported)")]
    NotHttp,
    #[error("must name a host")]
    NoHost,
}

/// An OTLP/gRPC collector address: `http://host:port`. TLS to the collector is not built in
/// (run a collector or agent next to oidc-authz).
pub fn collector_url(text: &str) -> Result<Url, CollectorUrlError> {
    let url = Url::parse(text).map_err(|_| CollectorUrlError::NotAUrl)?;
    if url.scheme() != "http" {
        return Err(CollectorUrlError::NotHttp);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CollectorUrlError::NoHost);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::{CollectorUrlError, collector_url};
    use crate::config::load_from_str;

    #[test]
    fn collector_urls_are_refused_with_a_fixed_reason() {
        for (text, expected) in [
            ("127.0.0.1:4317", CollectorUrlError::NotAUrl),
            ("not a url", CollectorUrlError::NotAUrl),
            ("https://collector:4317", CollectorUrlError::NotHttp),
        ] {
            assert_eq!(collector_url(text), Err(expected), "{text}");
        }
        assert_eq!(
            collector_url("http://127.0.0.1:4317").unwrap().as_str(),
            "http://127.0.0.1:4317/"
        );
    }

    const BASE: &str = "issuer: https://idp.test\nclient_id: c\nclient_secret: s\n\
                        session_secret: [0123456789abcdef0123456789abcdef]\n";

    #[test]
    fn absent_means_left_to_the_environment() {
        let (config, _) = load_from_str(BASE, "t.yaml", Vec::new()).unwrap();
        assert_eq!(config.otel.endpoint, None);
        assert_eq!(config.otel.service_name, None);
    }

    #[test]
    fn endpoint_and_service_name_are_read_from_file_and_environment() {
        let yaml = format!("{BASE}otel:\n  endpoint: http://127.0.0.1:4317\n");
        let env = vec![(
            "OIDC_AUTHZ_OTEL__SERVICE_NAME".to_string(),
            "edge-authz".to_string(),
        )];
        let (config, warnings) = load_from_str(&yaml, "t.yaml", env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.otel.endpoint.unwrap().as_str(),
            "http://127.0.0.1:4317/"
        );
        assert_eq!(config.otel.service_name.as_deref(), Some("edge-authz"));
    }

    #[test]
    fn bad_values_are_reported_with_their_key_path() {
        for (yaml, expected) in [
            (
                "otel:\n  endpoint: 127.0.0.1:4317\n",
                "otel.endpoint: must be",
            ),
            (
                "otel:\n  endpoint: https://collector:4317\n",
                "otel.endpoint: must be an http:// URL",
            ),
            ("otel:\n  service_name: ''\n", "otel.service_name: must not"),
            (
                "otel:\n  endpont: http://x:4317\n",
                "otel.endpont: unknown key",
            ),
            ("otel: yes\n", "otel: expected a mapping"),
        ] {
            let error = load_from_str(&format!("{BASE}{yaml}"), "t.yaml", Vec::new())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
