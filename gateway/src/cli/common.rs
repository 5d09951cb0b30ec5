//! Pieces every owner command shares: exit codes and the one-sentence error type, the
//! runtime, opening the data directory safely next to a running gateway, the client for
//! acting through a running gateway's owner API, and phone-number masking.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

/// Why a command did not succeed; decides the exit code. The message is one sentence
/// for stderr.
#[derive(Debug)]
pub enum Failure {
    /// Wrong or missing arguments or environment (exit 2, like clap's own usage errors).
    Usage(String),
    /// The operation failed or found problems (exit 1).
    Failed(String),
}

impl Failure {
    /// An operation failure (exit 1) with this message.
    pub fn failed(msg: impl Into<String>) -> Self {
        Failure::Failed(msg.into())
    }
}

impl From<crate::policy_edit::EditError> for Failure {
    fn from(e: crate::policy_edit::EditError) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// What every command returns.
pub type CliResult = Result<(), Failure>;

/// Prints the failure (if any) to stderr and maps it to the process exit code.
pub fn finish(r: CliResult) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("c2c-gateway: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("c2c-gateway: {m}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime for one command (the CLI does one thing at a time).
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    // Direct webhook delivery (replay) builds its own client inside the runtime.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start a runtime: {e}")))
}

/// Runs an async command body on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = CliResult>>(f: F) -> CliResult {
    runtime()?.block_on(f)
}

/// `--policies`, shared by every command that reads the policy directory.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Policy directory (gateway.toml + tenants/*.toml).
    #[arg(long, env = "C2C_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,
}

/// `--data`, shared by every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory of the gateway (the embedded sled store).
    #[arg(long, env = "C2C_DATA", default_value = "./data")]
    pub data: PathBuf,
}

/// `--gateway` and where the owner key comes from.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Act through a running gateway's owner API at this base URL (e.g.
    /// http://127.0.0.1:8080) instead of opening the data directory.
    #[arg(long, env = "C2C_GATEWAY_URL")]
    pub gateway: Option<String>,
    /// Environment variable holding the owner key for --gateway. The key itself is never
    /// an argument: arguments show in `ps` and shell history.
    #[arg(long = "owner-key-env", default_value = "C2C_OWNER_KEY")]
    pub owner_key_env: String,
}

impl GatewayArgs {
    /// The owner-API client when `--gateway` was given.
    pub fn remote(&self) -> Result<Option<Remote>, Failure> {
        match &self.gateway {
            None => Ok(None),
            Some(url) => Remote::new(url, &self.owner_key_env).map(Some),
        }
    }
}

/// Loads and validates the policy directory.
pub fn load_policy(dir: &Path) -> Result<c2c_tenancy::Policy, Failure> {
    c2c_tenancy::load_dir(dir).map_err(|e| {
        Failure::failed(format!(
            "the policy in {} is invalid ({} error(s)):\n{e}",
            dir.display(),
            e.0.len()
        ))
    })
}

/// Opens the gateway's sled database in `data` for exclusive use by this command.
///
/// sled takes an exclusive lock on the database, so while a gateway runs the open fails
/// without touching anything; that failure becomes a clear refusal naming the holder's
/// pid when the OS tells us. With `create = false` a missing store is an error rather
/// than a new empty database.
pub fn open_db(data: &Path, create: bool, remote_hint: bool) -> Result<sled::Db, Failure> {
    let dir = data.join("store");
    if !create && !dir.join("db").exists() {
        return Err(Failure::failed(format!(
            "there is no store in data dir {} (wrong --data, or the gateway never ran there)",
            data.display()
        )));
    }
    sled::Config::new()
        .path(&dir)
        // The CLI reads each entry once; a small cache is plenty.
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .map_err(|e| {
            if e.to_string().contains("could not acquire lock") {
                let pid = lock_holder(&dir.join("db"))
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "pid unknown".into());
                let how = if remote_hint {
                    "use --gateway URL (owner key in $C2C_OWNER_KEY) to act through it, or stop it first"
                } else {
                    "stop it first; this command needs the store to itself"
                };
                Failure::failed(format!(
                    "data dir {} is in use by a running gateway ({pid}); {how}",
                    data.display()
                ))
            } else {
                Failure::failed(format!("cannot open the store in {}: {e}", data.display()))
            }
        })
}

/// The pid holding a lock on `file`, from Linux's `/proc/locks` (matched by inode).
fn lock_holder(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(file).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 12345 00:2f:123456 0 EOF"
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (pid, dev_ino) = (f.get(4)?, f.get(5)?);
        (dev_ino.rsplit(':').next()? == ino.to_string())
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// A running gateway's owner API: one reqwest client and the owner key from the
/// environment.
pub struct Remote {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Remote {
    /// A client for the gateway at `base`, with the owner key from `$key_env`.
    pub fn new(base: &str, key_env: &str) -> Result<Self, Failure> {
        let key = std::env::var(key_env)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--gateway needs the owner key in the environment variable {key_env}"
                ))
            })?;
        // reqwest is built without a bundled TLS provider; use ring, as the server does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::failed(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
        })
    }

    /// GET `path`; the JSON answer, or the gateway's error message as a failure.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.client.get(self.url(path))).await
    }

    /// POST JSON to `path`; the JSON answer, or the gateway's error message.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// PATCH JSON to `path`; the JSON answer, or the gateway's error message.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.client.patch(self.url(path)).json(body))
            .await
    }

    /// GET `path` for a streamed body: the response once its status is a success (the
    /// caller reads the body chunk by chunk), else the gateway's error as a failure.
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response, Failure> {
        let resp = self
            .client
            .get(self.url(path))
            .header("x-api-key", &self.key)
            // The client's 30 s bound is for whole answers; a stream lasts as long as the
            // store is big, and the caller bounds the gaps between its chunks instead.
            .timeout(STREAM_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot reach the gateway at {}: {e}", self.base))
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(gateway_error(status, &text))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot reach the gateway at {}: {e}", self.base))
            })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::failed(format!("reading the gateway's answer failed: {e}")))?;
        if status.is_success() {
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        } else {
            Err(gateway_error(status, &text))
        }
    }
}

/// Longest a streamed answer may take in all (a week: no store is that big).
const STREAM_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The gateway's error answer as a failure: its `error.message`, else the body.
fn gateway_error(status: reqwest::StatusCode, text: &str) -> Failure {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()));
    let msg = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    Failure::failed(format!("the gateway answered {}: {msg}", status.as_u16()))
}

/// Prints a JSON value, pretty, to stdout.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) {
    // Our documents are plain data (string keys): serialising them cannot fail.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}
