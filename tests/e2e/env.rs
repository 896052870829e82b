//! The world the end-to-end scenarios act on: a real control plane from
//! cluster.sh, Defender running on the host, and kubectl.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Check = Result<(), String>;

/// What a kubectl invocation returned.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    command: String,
}

impl Outcome {
    fn from(command: String, output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            command,
        }
    }

    fn show(&self) -> String {
        format!(
            "`{}` exited {}\nstdout: {}\nstderr: {}",
            self.command,
            self.code,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }

    /// kubectl succeeded.
    pub fn accepted(&self) -> Check {
        if self.code == 0 { Ok(()) } else { Err(format!("expected success: {}", self.show())) }
    }

    /// kubectl failed, and stderr says `text`.
    pub fn rejected_with(&self, text: &str) -> Check {
        if self.code != 0 && self.stderr.contains(text) {
            Ok(())
        } else {
            Err(format!("expected a rejection saying {text:?}: {}", self.show()))
        }
    }

    /// kubectl succeeded, and stderr (where kubectl prints warnings) says `text`.
    pub fn accepted_with_warning(&self, text: &str) -> Check {
        if self.code == 0 && self.stderr.contains(text) {
            Ok(())
        } else {
            Err(format!("expected success with a warning saying {text:?}: {}", self.show()))
        }
    }
}

pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let command = format!("kubectl {}", args.join(" "));
        let mut child = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            // A hung API server fails the scenario instead of stalling CI.
            .arg("--request-timeout=60s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(stdin) = stdin {
            pipe.write_all(stdin.as_bytes()).expect("stdin written");
        }
        drop(pipe);
        Outcome::from(command, child.wait_with_output().expect("kubectl finishes"))
    }

    /// Runs a command that must succeed (setup steps).
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let outcome = self.run(args);
        outcome.accepted().map(|()| outcome.stdout)
    }

    pub fn apply(&self, manifest: &str) -> Outcome {
        self.run_with_stdin(&["apply", "-f", "-"], Some(manifest))
    }

    /// Runs kubectl with `plugins` first on PATH, the kubeconfig in
    /// $KUBECONFIG: kubectl finds plugins on PATH and passes them its
    /// environment, but no flags given before the plugin's name.
    pub fn run_with_plugins(&self, plugins: &Path, args: &[&str]) -> Outcome {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![plugins.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        let output = Command::new(&self.binary)
            .args(args)
            .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl runs");
        Outcome::from(format!("kubectl {}", args.join(" ")), output)
    }
}

/// Runs the `defender` command line.
pub fn defender_cli(args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_defender")).args(args).output().expect("defender runs");
    Outcome::from(format!("defender {}", args.join(" ")), output)
}

/// The control plane, stopped when dropped, even if a scenario panicked.
pub struct Cluster {
    script: PathBuf,
    pub dir: PathBuf,
    pub kubectl: Kubectl,
    pub bin_dir: PathBuf,
}

impl Cluster {
    pub fn up(repo: &Path, dir: &Path) -> Result<Self, String> {
        let script = repo.join("tests/e2e/cluster.sh");
        let bin_dir = PathBuf::from(std::env::var("E2E_BIN_DIR").map_err(|_| "E2E_BIN_DIR is not set")?);
        let status = Command::new("bash").arg(&script).arg("up").arg(dir).stdout(Stdio::null()).status();
        if !status.is_ok_and(|s| s.success()) {
            let _ = Command::new("bash").arg(&script).arg("down").arg(dir).status();
            return Err(format!("cluster.sh up failed; logs in {}/logs", dir.display()));
        }
        let kubectl = Kubectl { binary: bin_dir.join("kubectl"), kubeconfig: dir.join("kubeconfig") };
        Ok(Self { script, dir: dir.to_owned(), kubectl, bin_dir })
    }

    pub fn admin_curl_args(&self) -> Vec<String> {
        let pki = self.dir.join("pki");
        vec![
            "--cacert".into(),
            self.dir.join("ca.crt").display().to_string(),
            "--cert".into(),
            pki.join("admin.crt").display().to_string(),
            "--key".into(),
            pki.join("admin.key").display().to_string(),
        ]
    }

    /// Stops the API server (etcd and the controllers keep running).
    pub fn stop_apiserver(&self) -> Check {
        self.script_command("stop-apiserver")
    }

    /// Starts it again with the same flags and port, and waits until it is ready.
    pub fn start_apiserver(&self) -> Check {
        self.script_command("start-apiserver")
    }

    fn script_command(&self, command: &str) -> Check {
        let status =
            Command::new("bash").arg(&self.script).arg(command).arg(&self.dir).stdout(Stdio::null()).status();
        if status.is_ok_and(|s| s.success()) {
            Ok(())
        } else {
            Err(format!("cluster.sh {command} failed; logs in {}/logs", self.dir.display()))
        }
    }

    pub fn url(&self) -> String {
        std::fs::read_to_string(self.dir.join("apiserver-url")).unwrap_or_default().trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            Command::new("bash").arg(&self.script).arg("down").arg(&self.dir).stdout(Stdio::null()).status();
    }
}

/// Defender running on the host, as `defender serve`.
pub struct Defender {
    binary: PathBuf,
    pub port: u16,
    pub certs: PathBuf,
    pub policies: PathBuf,
    kubeconfig: PathBuf,
    /// Clients must present a certificate from this CA (the cluster's), as the
    /// API server does; `client` is the admin pair the test's own probes use.
    client_ca: PathBuf,
    client: (PathBuf, PathBuf),
    /// Flags added to `defender serve` (e.g. `--own-namespace` for a replica).
    pub extra_args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Defender {
    pub fn new(work: &Path, policies: PathBuf, cluster: &Path) -> Result<Self, String> {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_defender"));
        let certs = work.join("defender-certs");
        let status = Command::new(&binary)
            .args(["certs", "--service", "defender", "--namespace", "defender-system", "--out"])
            .arg(&certs)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("defender certs failed".to_owned());
        }
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        Ok(Self {
            binary,
            port,
            certs,
            policies,
            kubeconfig: cluster.join("kubeconfig"),
            client_ca: cluster.join("ca.crt"),
            client: (cluster.join("pki/admin.crt"), cluster.join("pki/admin.key")),
            extra_args: Vec::new(),
            log: work.join("defender.log"),
            child: None,
        })
    }

    pub fn start(&mut self) -> Check {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg(format!("--listen=127.0.0.1:{}", self.port))
            .arg(format!("--tls-cert={}", self.certs.join("tls.crt").display()))
            .arg(format!("--tls-key={}", self.certs.join("tls.key").display()))
            .arg(format!("--policies={}", self.policies.display()))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--client-ca={}", self.client_ca.display()))
            .arg("--log-format=json")
            .args(&self.extra_args)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("defender serve: {e}"))?;
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(20), || self.probe("/readyz", true));
        if ready { Ok(()) } else { Err(format!("defender did not become ready; see {}", self.log.display())) }
    }

    /// GET `path` over HTTPS, with or without a client certificate; true on 2xx.
    pub fn probe(&self, path: &str, with_client_certificate: bool) -> bool {
        let mut curl = Command::new("curl");
        curl.args(["-fsS", "-o", "/dev/null", "--cacert"]).arg(self.certs.join("ca.crt"));
        if with_client_certificate {
            curl.arg("--cert").arg(&self.client.0).arg("--key").arg(&self.client.1);
        }
        curl.arg(format!("https://127.0.0.1:{}{path}", self.port))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// GET `path` over HTTPS with the client certificate: the body of a 2xx answer.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let output = Command::new("curl")
            .args(["-fsS", "--max-time", "10", "--cacert"])
            .arg(self.certs.join("ca.crt"))
            .arg("--cert")
            .arg(&self.client.0)
            .arg("--key")
            .arg(&self.client.1)
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("GET {path}: {}", String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// POSTs an AdmissionReview to /validate and returns its answer's `response`.
    pub fn review(&self, review: &Value) -> Result<Value, String> {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "20", "-H", "Content-Type: application/json", "--data-binary", "@-"])
            .arg("--cacert")
            .arg(self.certs.join("ca.crt"))
            .arg("--cert")
            .arg(&self.client.0)
            .arg("--key")
            .arg(&self.client.1)
            .arg(format!("https://127.0.0.1:{}/validate", self.port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = curl.spawn().map_err(|e| format!("curl: {e}"))?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(review.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            format!("not an AdmissionReview answer ({e}): {}", String::from_utf8_lossy(&output.stdout))
        })?;
        Ok(answer["response"].clone())
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> Check {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("defender exited with {status} on SIGTERM")),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    return Err("defender did not exit within 30s of SIGTERM".to_owned());
                }
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one sample on /metrics (`name{label="value"}` as served),
    /// if it is served.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.get("/metrics").ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }
}

impl Drop for Defender {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    condition()
}

/// The ValidatingWebhookConfiguration `defender webhook-config` generates for
/// Defender's policies (for the default policies, deploy/base's: a test
/// checks), pointed at Defender on the host.
pub fn webhook_configuration(defender: &Defender) -> Result<Value, String> {
    let set = defender::config::load_path(&defender.policies).map_err(|e| e.to_string())?;
    let ca = defender.certs.join(defender::certs::CA_CERT);
    let options = defender::webhooks::Options {
        url: Some(format!("https://127.0.0.1:{}/validate", defender.port)),
        ca_bundle: Some(std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?),
        ..defender::webhooks::Options::default()
    };
    let configuration = defender::webhooks::configuration(&set.policies, &set.settings, &options);
    serde_json::to_value(configuration).map_err(|e| e.to_string())
}
