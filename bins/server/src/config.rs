//! Configuration layering: CLI flag > environment > TOML file (`--config` / `FAFNIR_CONFIG`) >
//! default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use fafnir_core::config::parse_duration;
use fafnir_core::{Config, CoreError};

/// Flags shared by every server binary and the admin CLI.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `database_url`).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// sqlite://… or postgres://… [env: FAFNIR_DATABASE_URL] [default: sqlite://fafnir.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
    /// HTTP listen address [env: FAFNIR_HTTP_ADDR]
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// gRPC listen address [env: FAFNIR_GRPC_ADDR]
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub grpc_addr: Option<SocketAddr>,
    /// The URL browsers use to reach this server [env: FAFNIR_PUBLIC_URL]
    #[arg(long, value_name = "URL", global = true)]
    pub public_url: Option<String>,
    /// `iss` of issued tokens [env: FAFNIR_ISSUER]
    #[arg(long, global = true)]
    pub issuer: Option<String>,
    /// Comma-separated origins allowed for CORS and CSRF [env: FAFNIR_ALLOWED_ORIGINS]
    #[arg(long, value_name = "ORIGINS", global = true)]
    pub allowed_origins: Option<String>,
    /// Mark cookies Secure (true unless serving plain HTTP locally) [env: FAFNIR_COOKIE_SECURE]
    #[arg(long, value_name = "BOOL", global = true)]
    pub cookie_secure: Option<bool>,
    /// Access-token lifetime, e.g. 15m [env: FAFNIR_ACCESS_TTL]
    #[arg(long, value_name = "DURATION", global = true)]
    pub access_ttl: Option<String>,
    /// Refresh-token (session) lifetime, e.g. 30d [env: FAFNIR_REFRESH_TTL]
    #[arg(long, value_name = "DURATION", global = true)]
    pub refresh_ttl: Option<String>,
    /// Log filter, e.g. info or info,fafnir_auth=debug [env: FAFNIR_LOG]
    #[arg(long, value_name = "FILTER", global = true)]
    pub log: Option<String>,
}

impl ConfigArgs {
    /// Builds the configuration; `defaults` holds the binary's own defaults (e.g. its port).
    ///
    /// `env` is the whole environment (the names of social login providers are the operator's,
    /// so every `FAFNIR_OAUTH_<NAME>_…` variable is looked at).
    pub fn load(&self, defaults: Config, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, CoreError> {
        let vars: std::collections::BTreeMap<String, String> = env.into_iter().collect();
        let env = |k: &str| vars.get(k).cloned();
        let mut config = defaults;
        let file = self.config.clone().or_else(|| env("FAFNIR_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CoreError::Config(format!("cannot read config file {}: {e}", path.display())))?;
            config = overlay_toml(config, &text)
                .map_err(|e| CoreError::Config(format!("config file {}: {e}", path.display())))?;
        }
        config.apply_env(env)?;
        config.apply_oauth_env(&vars)?;
        if let Some(v) = &self.database_url {
            config.database_url = v.clone();
        }
        if let Some(v) = self.http_addr {
            config.http_addr = v;
        }
        if let Some(v) = self.grpc_addr {
            config.grpc_addr = v;
        }
        if let Some(v) = &self.public_url {
            config.public_url = Some(v.clone());
        }
        if let Some(v) = &self.issuer {
            config.issuer = Some(v.clone());
        }
        if let Some(v) = &self.allowed_origins {
            config.allowed_origins = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = self.cookie_secure {
            config.cookie_secure = v;
        }
        if let Some(v) = &self.access_ttl {
            config.access_ttl = parse_duration(v).map_err(|e| CoreError::Config(format!("--access-ttl: {e}")))?;
        }
        if let Some(v) = &self.refresh_ttl {
            config.refresh_ttl = parse_duration(v).map_err(|e| CoreError::Config(format!("--refresh-ttl: {e}")))?;
        }
        if let Some(v) = &self.log {
            config.log = v.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

/// The process's environment, leaving out variables that are not valid Unicode (none of Fafnir's
/// are; `std::env::vars` would panic on them).
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// Applies the keys present in a TOML document over `base` (absent keys keep `base`'s values).
fn overlay_toml(base: Config, text: &str) -> Result<Config, String> {
    let overlay: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut merged = toml::Table::try_from(&base).map_err(|e| e.to_string())?;
    for (k, v) in overlay {
        merged.insert(k, v);
    }
    toml::Value::Table(merged).try_into::<Config>().map_err(|e| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "database_url = \"sqlite://from-file.db\"\naccess_ttl = \"5m\"\nlog = \"debug\"\nrefresh_ttl = \"7d\""
        )
        .unwrap();
        let env: HashMap<&str, &str> =
            [("FAFNIR_ACCESS_TTL", "10m"), ("FAFNIR_DATABASE_URL", "sqlite://from-env.db")].into();
        let args = ConfigArgs {
            config: Some(file.path().to_owned()),
            database_url: Some("sqlite://from-flag.db".into()),
            ..Default::default()
        };
        let c = args.load(Config::default(), env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(c.database_url, "sqlite://from-flag.db");
        assert_eq!(c.access_ttl, Duration::from_secs(600));
        assert_eq!(c.log, "debug");
        assert_eq!(c.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.http_addr, Config::default().http_addr);
    }

    #[test]
    fn bad_files_and_values_are_clear_errors() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "databse_url = 1").unwrap();
        let args = ConfigArgs { config: Some(file.path().to_owned()), ..Default::default() };
        let e = args.load(Config::default(), []).unwrap_err().to_string();
        assert!(e.contains("databse_url"), "{e}");
        let args = ConfigArgs { config: Some("/nonexistent.toml".into()), ..Default::default() };
        assert!(args.load(Config::default(), []).unwrap_err().to_string().contains("cannot read"));
        let args = ConfigArgs { access_ttl: Some("forever".into()), ..Default::default() };
        assert!(args.load(Config::default(), []).is_err());
    }
}
