//! Where the Redis is (`RedisTopology`), the certificates for `rediss://` (`RedisTls`), and the
//! connection factory built from them (`Pool`): one constructor per topology, and one for
//! Sentinel, which picks deadpool's Sentinel pool or, over TLS, the redis crate's own client.

use deadpool_redis::redis;
use deadpool_redis::{Runtime, cluster, sentinel};

/// Where the Redis is. URLs may hold passwords: deliberately no `Debug`.
#[derive(Clone)]
pub enum RedisTopology {
    /// One server: `redis://`, `rediss://` or `unix://`.
    Single { url: String },
    /// Seed nodes of a Redis Cluster; the client discovers the rest.
    Cluster { urls: Vec<String> },
    /// Sentinels that know the master `master_name`; `db` is selected on the master. `username`
    /// and `password` log in to the master (`AUTH`); the URLs' credentials are the sentinels'.
    Sentinel {
        urls: Vec<String>,
        master_name: String,
        db: i64,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Certificates for `rediss://` beyond the system's trust store (PEM). Deliberately no `Debug`:
/// it holds a private key.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificates that sign the servers' certificates (`redis.ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key (`redis.cert_file`, `redis.key_file`), for servers with
    /// `tls-auth-clients yes`.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca_pem.is_none() && self.client_pem.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client_pem.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.ca_pem.clone(),
        })
    }
}

/// Why no store could be made for a topology. The texts name no URL or password.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    /// The redis crate refused a URL or the Sentinel client's settings.
    #[error("invalid Redis configuration: {0}")]
    Redis(#[from] redis::RedisError),
    /// deadpool refused the pool's settings.
    #[error("invalid Redis configuration: {0}")]
    Pool(Box<dyn std::error::Error + Send + Sync>),
    #[error("invalid Redis configuration: the sentinels' URLs are all rediss:// or all redis://")]
    MixedSentinelSchemes,
    #[error(
        "invalid Redis configuration: the sentinels' URLs must all carry the same user and password"
    )]
    DifferentSentinelLogins,
}

impl RedisConfigError {
    fn pool(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        RedisConfigError::Pool(Box::new(error))
    }
}

/// One pool per topology, used as a connection factory: `connect` yields a `Connection` that hides
/// which.
pub(super) enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(cluster::Pool),
    Sentinel(sentinel::Pool),
    /// Sentinels over TLS: deadpool cannot pass certificates to them or to the master, so the
    /// redis crate's own client (which asks the sentinels, then checks the master's role) is the
    /// factory.
    SentinelTls(Box<tokio::sync::Mutex<redis::sentinel::SentinelClient>>),
}

/// The `RedisTopology::Sentinel` fields, borrowed.
struct Sentinels<'a> {
    urls: &'a [String],
    master_name: &'a str,
    db: i64,
    username: Option<&'a str>,
    password: Option<&'a str>,
}

impl Pool {
    /// The pool for `topology`; connects lazily. `tls` applies to `rediss://` URLs.
    pub(super) fn new(
        topology: &RedisTopology,
        tls: &RedisTls,
        pool_config: deadpool_redis::PoolConfig,
    ) -> Result<Pool, RedisConfigError> {
        match topology {
            RedisTopology::Single { url } => Self::single(url, tls, pool_config),
            RedisTopology::Cluster { urls } => Self::cluster(urls, pool_config),
            RedisTopology::Sentinel {
                urls,
                master_name,
                db,
                username,
                password,
            } => Self::sentinel(
                &Sentinels {
                    urls,
                    master_name,
                    db: *db,
                    username: username.as_deref(),
                    password: password.as_deref(),
                },
                tls,
                pool_config,
            ),
        }
    }

    /// One server; with `tls`'s certificates for `rediss://`.
    fn single(
        url: &str,
        tls: &RedisTls,
        pool_config: deadpool_redis::PoolConfig,
    ) -> Result<Pool, RedisConfigError> {
        if url.starts_with("rediss://") {
            let connection_info = single_connection_info(url, tls)?;
            let manager = deadpool_redis::Manager::new(connection_info)?;
            let pool = deadpool_redis::Pool::builder(manager)
                .config(pool_config)
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(RedisConfigError::pool)?;
            return Ok(Pool::Single(pool));
        }
        let mut config = deadpool_redis::Config::from_url(url);
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(RedisConfigError::pool)?;
        Ok(Pool::Single(pool))
    }

    /// A Redis Cluster from its seed nodes (the system's CAs for `rediss://`).
    fn cluster(
        urls: &[String],
        pool_config: deadpool_redis::PoolConfig,
    ) -> Result<Pool, RedisConfigError> {
        let mut config = cluster::Config::from_urls(urls.to_vec());
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(RedisConfigError::pool)?;
        Ok(Pool::Cluster(pool))
    }

    /// The master the sentinels name: over TLS (`rediss://` sentinels) the redis crate's client
    /// with `tls`'s certificates, else deadpool's Sentinel pool.
    fn sentinel(
        sentinels: &Sentinels,
        tls: &RedisTls,
        pool_config: deadpool_redis::PoolConfig,
    ) -> Result<Pool, RedisConfigError> {
        if sentinels
            .urls
            .iter()
            .any(|url| url.starts_with("rediss://"))
        {
            let client = sentinel_tls_client(sentinels, tls)?;
            return Ok(Pool::SentinelTls(Box::new(tokio::sync::Mutex::new(client))));
        }
        let mut config = sentinel::Config::from_urls(
            sentinels.urls.to_vec(),
            sentinels.master_name.to_owned(),
            sentinel::SentinelServerType::Master,
        );
        config.node_connection_info = Some(sentinel::SentinelNodeConnectionInfo {
            tls_mode: None,
            redis_connection_info: Some(deadpool_redis::RedisConnectionInfo {
                db: sentinels.db,
                username: sentinels.username.map(str::to_owned),
                password: sentinels.password.map(str::to_owned),
                ..Default::default()
            }),
        });
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(RedisConfigError::pool)?;
        Ok(Pool::Sentinel(pool))
    }
}

/// Where one server is: its URL, with `tls`'s certificates for `rediss://`.
pub(super) fn single_connection_info(
    url: &str,
    tls: &RedisTls,
) -> redis::RedisResult<redis::ConnectionInfo> {
    match tls.certificates() {
        Some(certificates) if url.starts_with("rediss://") => {
            Ok(redis::Client::build_with_tls(url, certificates)?
                .get_connection_info()
                .clone())
        }
        _ => redis::IntoConnectionInfo::into_connection_info(url),
    }
}

/// A Sentinel client that speaks TLS to the sentinels and to the master, with `tls`'s
/// certificates for both. The sentinels share one login (the first URL's): the redis crate's
/// builder takes one; the configuration refuses URLs with different ones.
fn sentinel_tls_client(
    sentinels: &Sentinels,
    tls: &RedisTls,
) -> Result<redis::sentinel::SentinelClient, RedisConfigError> {
    let (addresses, sentinel_login) = sentinel_addresses(sentinels.urls)?;
    let mut builder = redis::sentinel::SentinelClientBuilder::new(
        addresses,
        sentinels.master_name,
        redis::sentinel::SentinelServerType::Master,
    )?
    .set_client_to_redis_db(sentinels.db)
    .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    if let Some(certificates) = tls.certificates() {
        builder = builder
            .set_client_to_sentinel_certificates(certificates.clone())
            .set_client_to_redis_certificates(certificates);
    }
    if let Some(sentinel_username) = &sentinel_login.0 {
        builder = builder.set_client_to_sentinel_username(sentinel_username);
    }
    if let Some(sentinel_password) = &sentinel_login.1 {
        builder = builder.set_client_to_sentinel_password(sentinel_password);
    }
    if let Some(username) = sentinels.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = sentinels.password {
        builder = builder.set_client_to_redis_password(password);
    }
    Ok(builder.build()?)
}

/// A user and a password, each optional.
type Login = (Option<String>, Option<String>);

/// The sentinels' addresses and their one login, from their `rediss://` URLs.
fn sentinel_addresses(
    urls: &[String],
) -> Result<(Vec<redis::ConnectionAddr>, Login), RedisConfigError> {
    let sentinels = urls
        .iter()
        .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
        .collect::<redis::RedisResult<Vec<_>>>()?;
    if urls.iter().any(|url| !url.starts_with("rediss://")) {
        return Err(RedisConfigError::MixedSentinelSchemes);
    }
    let login = |info: &redis::ConnectionInfo| {
        let settings = info.redis_settings();
        (
            settings.username().map(str::to_owned),
            settings.password().map(str::to_owned),
        )
    };
    let sentinel_login = sentinels.first().map(login).unwrap_or_default();
    if sentinels.iter().any(|info| login(info) != sentinel_login) {
        return Err(RedisConfigError::DifferentSentinelLogins);
    }
    let addresses = sentinels.iter().map(|info| info.addr().clone()).collect();
    Ok((addresses, sentinel_login))
}
