//! `login` and `logout` as docker does them: credentials go to the credential helper docker's
//! config names for the registry (`credHelpers`, else `credsStore`), or into the config's
//! `auths` (`{"auth": base64(user:password)}`), in `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`; every other setting in the file is kept. Pulls and pushes read
//! them back (see [`crate::Registry`]).

use base64::Engine as _;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// docker's key for Docker Hub's credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Why credentials could not be kept or removed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `$DOCKER_CONFIG` nor `$HOME` is set.
    #[error("no docker config directory: set DOCKER_CONFIG or HOME")]
    NoConfigDir,
    /// The config file cannot be read, parsed or written.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The credential helper failed.
    #[error("credential helper docker-credential-{helper} {action} failed: {message}")]
    Helper {
        /// The helper's name (after `docker-credential-`).
        helper: String,
        /// `store` or `erase`.
        action: &'static str,
        /// What it said, or why it could not run.
        message: String,
    },
}

/// The key docker keeps a registry's credentials under: Docker Hub's is
/// [`DOCKER_HUB_KEY`]; any other is its `host[:port]` (a scheme or path given is dropped).
pub fn credential_key(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        other => other.to_owned(),
    }
}

/// The host to talk to for a credential key (Docker Hub's registry for its key).
pub fn registry_host(key: &str) -> &str {
    if key == DOCKER_HUB_KEY {
        "docker.io"
    } else {
        key
    }
}

/// docker's config file, read whole so that writing it back keeps what stagecraft does not use.
#[derive(Debug)]
pub struct DockerConfig {
    path: PathBuf,
    document: Map<String, Value>,
}

impl DockerConfig {
    /// The config of `$DOCKER_CONFIG` or `~/.docker` (an absent file is an empty config).
    pub fn open() -> Result<DockerConfig, CredentialsError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
            .ok_or(CredentialsError::NoConfigDir)?;
        DockerConfig::open_in(&dir)
    }

    /// The config file in `dir`.
    pub fn open_in(dir: &Path) -> Result<DockerConfig, CredentialsError> {
        let path = dir.join("config.json");
        let failed = |message: String| CredentialsError::Config {
            path: path.clone(),
            message,
        };
        let document = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(failed("not a JSON object".to_owned())),
                Err(e) => return Err(failed(e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(failed(e.to_string())),
        };
        Ok(DockerConfig { path, document })
    }

    /// The credential helper for `key`: its `credHelpers` entry, else `credsStore`.
    pub fn helper(&self, key: &str) -> Option<String> {
        let by_registry = self
            .document
            .get("credHelpers")
            .and_then(|helpers| helpers.get(key))
            .and_then(Value::as_str);
        by_registry
            .or_else(|| self.document.get("credsStore").and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    }

    /// Keeps `user` and `password` for the registry `key`: with its helper, or in `auths`.
    /// Returns where they went.
    pub fn store(
        &mut self,
        key: &str,
        user: &str,
        password: &str,
    ) -> Result<String, CredentialsError> {
        if let Some(helper) = self.helper(key) {
            let input = serde_json::json!({"ServerURL": key, "Username": user, "Secret": password});
            run_helper(&helper, "store", input.to_string().as_bytes())?;
            return Ok(format!("credential helper docker-credential-{helper}"));
        }
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let auths = self
            .document
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(auths) = auths {
            auths.insert(key.to_owned(), serde_json::json!({"auth": auth}));
        }
        self.write()?;
        Ok(self.path.display().to_string())
    }

    /// Forgets the registry `key`'s credentials (its helper's and those in `auths`). Returns
    /// whether there were any.
    pub fn erase(&mut self, key: &str) -> Result<bool, CredentialsError> {
        let mut found = false;
        if let Some(helper) = self.helper(key) {
            // A helper that has none says so on failure: that is not an error to stop at.
            found = run_helper(&helper, "erase", key.as_bytes()).is_ok();
        }
        let removed = self
            .document
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|auths| auths.remove(key))
            .is_some();
        if removed {
            self.write()?;
        }
        Ok(found || removed)
    }

    /// Writes the file as docker does (tab-indented), through a new file renamed over the old
    /// one, readable by its owner only: it holds secrets.
    fn write(&self) -> Result<(), CredentialsError> {
        let failed = |message: String| CredentialsError::Config {
            path: self.path.clone(),
            message,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serde::Serialize::serialize(&self.document, &mut serializer)
            .map_err(|e| failed(e.to_string()))?;
        let mut file = tempfile::Builder::new()
            .prefix(".config.json")
            .tempfile_in(dir)
            .map_err(|e| failed(e.to_string()))?;
        file.write_all(&bytes).map_err(|e| failed(e.to_string()))?;
        file.as_file()
            .sync_all()
            .map_err(|e| failed(e.to_string()))?;
        file.persist(&self.path)
            .map_err(|e| failed(e.error.to_string()))?;
        Ok(())
    }
}

/// Runs `docker-credential-HELPER ACTION` with `input` on its standard input.
fn run_helper(helper: &str, action: &'static str, input: &[u8]) -> Result<(), CredentialsError> {
    let failed = |message: String| CredentialsError::Helper {
        helper: helper.to_owned(),
        action,
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        let said = [output.stdout, output.stderr].concat();
        Err(failed(String::from_utf8_lossy(&said).trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_docker_s() {
        assert_eq!(credential_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(credential_key(""), DOCKER_HUB_KEY);
        assert_eq!(credential_key("https://ghcr.io/v2/"), "ghcr.io");
        assert_eq!(credential_key("localhost:5000"), "localhost:5000");
        assert_eq!(registry_host(DOCKER_HUB_KEY), "docker.io");
    }

    #[test]
    fn auths_are_written_and_erased_keeping_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"other.io": {"auth": "eDp5"}}, "psFormat": "table {{.ID}}"}"#,
        )
        .unwrap();
        let mut config = DockerConfig::open_in(dir.path()).unwrap();
        config.store("localhost:5000", "alice", "s3cret").unwrap();
        let written: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            written["auths"]["localhost:5000"]["auth"],
            "YWxpY2U6czNjcmV0"
        );
        assert_eq!(written["auths"]["other.io"]["auth"], "eDp5");
        assert_eq!(written["psFormat"], "table {{.ID}}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");

        let mut config = DockerConfig::open_in(dir.path()).unwrap();
        assert!(config.erase("localhost:5000").unwrap());
        assert!(!config.erase("localhost:5000").unwrap());
        let written: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert!(written["auths"].get("localhost:5000").is_none());
        assert_eq!(written["auths"]["other.io"]["auth"], "eDp5");
    }

    #[test]
    fn a_configured_helper_gets_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore": "stagecraft-test-nosuch", "credHelpers": {"ghcr.io": "other"}}"#,
        )
        .unwrap();
        let mut config = DockerConfig::open_in(dir.path()).unwrap();
        assert_eq!(config.helper("ghcr.io").as_deref(), Some("other"));
        assert_eq!(
            config.helper("localhost:5000").as_deref(),
            Some("stagecraft-test-nosuch")
        );
        // Never written to the file instead: the helper's failure is the answer.
        let error = config.store("localhost:5000", "a", "b").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("docker-credential-stagecraft-test-nosuch store"),
            "{error}"
        );
        let written = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(!written.contains("auths"), "{written}");
    }
}
