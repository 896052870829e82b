//! `defender serve` as a child process on 127.0.0.1, for the tests that need
//! the real binary (signals, process memory): started with a fresh
//! development certificate, its JSON log kept, killed when dropped.

// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use defender::certs::DevCerts;
use serde_json::Value;
use tempfile::TempDir;

/// How long the process may take to bind and say so.
const STARTUP: Duration = Duration::from_secs(30);

pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// The CA that signed its serving certificate.
    pub ca: String,
    /// Its log (JSON lines) so far.
    log: Arc<Mutex<String>>,
    /// The thread that reads the log; it ends when the process closes stderr.
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

impl ServeProcess {
    /// `defender serve` with `args` added, once it logs the address it serves on.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like `start`, with environment variables set for the process.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate("defender", "defender-system", 1).unwrap();
        let files = certs.write(&dir.path().join("tls")).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_defender"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .args(args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAMESPACE")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (bound, address) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["message"] == "Defender is serving" {
                    let _ = bound.send(entry["addr"].as_str().unwrap_or_default().parse());
                }
                lines.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = match address.recv_timeout(STARTUP) {
            Ok(Ok(addr)) => addr,
            _ => panic!("defender serve did not start:\n{}", log.lock().unwrap()),
        };
        Self { child, addr, ca: certs.ca_pem, log, reader: Some(reader), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the process with SIGTERM, as Kubernetes does, and returns its
    /// whole log once it has exited.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
